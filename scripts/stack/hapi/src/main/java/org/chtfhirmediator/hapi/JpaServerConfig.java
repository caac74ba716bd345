package org.chtfhirmediator.hapi;

import ca.uhn.fhir.batch2.jobs.config.Batch2JobsConfig;
import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.jpa.api.config.JpaStorageSettings;
import ca.uhn.fhir.jpa.api.config.ThreadPoolFactoryConfig;
import ca.uhn.fhir.jpa.batch2.JpaBatch2Config;
import ca.uhn.fhir.jpa.binary.api.IBinaryStorageSvc;
import ca.uhn.fhir.jpa.binstore.DatabaseBinaryContentStorageSvcImpl;
import ca.uhn.fhir.jpa.config.HapiJpaConfig;
import ca.uhn.fhir.jpa.config.r4.JpaR4Config;
import ca.uhn.fhir.jpa.config.util.HapiEntityManagerFactoryUtil;
import ca.uhn.fhir.jpa.model.config.PartitionSettings;
import ca.uhn.fhir.jpa.model.config.SubscriptionSettings;
import ca.uhn.fhir.jpa.model.dialect.HapiFhirH2Dialect;
import ca.uhn.fhir.jpa.searchparam.submit.config.SearchParamSubmitterConfig;
import ca.uhn.fhir.jpa.subscription.channel.config.SubscriptionChannelConfig;
import ca.uhn.fhir.jpa.subscription.match.deliver.email.IEmailSender;
import ca.uhn.fhir.jpa.util.LoggingEmailSender;
import jakarta.persistence.EntityManagerFactory;
import org.apache.commons.dbcp2.BasicDataSource;
import org.hl7.fhir.dstu2.model.Subscription;
import org.springframework.beans.factory.config.ConfigurableListableBeanFactory;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.context.annotation.Import;
import org.springframework.context.annotation.Primary;
import org.springframework.orm.jpa.JpaTransactionManager;
import org.springframework.orm.jpa.LocalContainerEntityManagerFactoryBean;

import java.time.Duration;
import java.util.Properties;
import javax.sql.DataSource;

/**
 * The beans HAPI's JPA configuration expects its host application to provide: storage settings, a
 * data source (H2 file database), the entity manager factory, the transaction manager. Everything
 * else (DAOs, resource providers, search, terminology, validation support, batch jobs) comes from
 * HAPI's own configuration classes imported here.
 */
@Configuration
// SubscriptionChannelConfig: the in-memory message broker, needed by batch jobs even without
// subscriptions. SearchParamSubmitterConfig: validates SearchParameter writes and reindexes.
@Import({
	JpaR4Config.class,
	HapiJpaConfig.class,
	JpaBatch2Config.class,
	Batch2JobsConfig.class,
	SubscriptionChannelConfig.class,
	SearchParamSubmitterConfig.class,
	ThreadPoolFactoryConfig.class
})
public class JpaServerConfig {

	@Bean
	public JpaStorageSettings storageSettings(LauncherOptions theOptions) {
		// HAPI's defaults are kept (they are the starter's defaults for everything the mediator
		// touches: transactions, conditional operations, referential integrity on write, no
		// external references, lenient parsing); only the client id strategy is configurable.
		JpaStorageSettings retVal = new JpaStorageSettings();
		retVal.setResourceClientIdStrategy(theOptions.clientIdStrategy);
		if (theOptions.clientIdStrategy == JpaStorageSettings.ClientIdStrategyEnum.ANY) {
			// ANY requires server-assigned ids to be UUIDs (HAPI refuses ANY with sequential ids)
			retVal.setResourceServerIdStrategy(JpaStorageSettings.IdStrategyEnum.UUID);
		}
		return retVal;
	}

	@Bean
	public PartitionSettings partitionSettings() {
		return new PartitionSettings();
	}

	@Bean
	public SubscriptionSettings subscriptionSettings(LauncherOptions theOptions) {
		SubscriptionSettings retVal = new SubscriptionSettings();
		if (theOptions.subscriptions) {
			retVal.addSupportedSubscriptionType(Subscription.SubscriptionChannelType.RESTHOOK);
		}
		return retVal;
	}

	@Bean(destroyMethod = "close")
	public BasicDataSource dataSource(LauncherOptions theOptions) {
		BasicDataSource retVal = new BasicDataSource();
		retVal.setDriver(new org.h2.Driver());
		retVal.setUrl("jdbc:h2:file:" + theOptions.dataDir.resolve("hapi") + ";DB_CLOSE_ON_EXIT=FALSE");
		retVal.setUsername("sa");
		retVal.setPassword("");
		retVal.setMaxTotal(theOptions.dbPool);
		retVal.setMaxWait(Duration.ofSeconds(30));
		return retVal;
	}

	@Bean
	public LocalContainerEntityManagerFactoryBean entityManagerFactory(
			ConfigurableListableBeanFactory theBeanFactory,
			FhirContext theFhirContext,
			JpaStorageSettings theStorageSettings,
			DataSource theDataSource) {
		LocalContainerEntityManagerFactoryBean retVal =
				HapiEntityManagerFactoryUtil.newEntityManagerFactory(theBeanFactory, theFhirContext, theStorageSettings);
		retVal.setPersistenceUnitName("HAPI_PU");
		retVal.setDataSource(theDataSource);
		Properties props = new Properties();
		props.put("hibernate.dialect", HapiFhirH2Dialect.class.getName());
		props.put("hibernate.hbm2ddl.auto", "update");
		props.put("hibernate.format_sql", "false");
		props.put("hibernate.show_sql", "false");
		// Full-text search (Lucene) off, as in HAPI's starter defaults.
		props.put("hibernate.search.enabled", "false");
		retVal.setJpaProperties(props);
		return retVal;
	}

	@Bean
	@Primary
	public JpaTransactionManager transactionManager(EntityManagerFactory theEntityManagerFactory) {
		JpaTransactionManager retVal = new JpaTransactionManager();
		retVal.setEntityManagerFactory(theEntityManagerFactory);
		return retVal;
	}

	@Bean
	public IBinaryStorageSvc binaryStorageSvc() {
		return new DatabaseBinaryContentStorageSvcImpl();
	}

	@Bean
	public IEmailSender emailSender() {
		return new LoggingEmailSender();
	}
}
