package org.chtfhirmediator.hapi;

import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.context.support.IValidationSupport;
import ca.uhn.fhir.interceptor.api.IInterceptorService;
import ca.uhn.fhir.jpa.api.config.JpaStorageSettings;
import ca.uhn.fhir.jpa.api.dao.DaoRegistry;
import ca.uhn.fhir.jpa.api.dao.IFhirResourceDao;
import ca.uhn.fhir.jpa.api.dao.IFhirSystemDao;
import ca.uhn.fhir.jpa.interceptor.UserRequestRetryVersionConflictsInterceptor;
import ca.uhn.fhir.jpa.provider.JpaCapabilityStatementProvider;
import ca.uhn.fhir.jpa.search.DatabaseBackedPagingProvider;
import ca.uhn.fhir.jpa.subscription.match.config.SubscriptionProcessorConfig;
import ca.uhn.fhir.jpa.subscription.submit.config.SubscriptionSubmitterConfig;
import ca.uhn.fhir.rest.api.EncodingEnum;
import ca.uhn.fhir.rest.api.server.SystemRequestDetails;
import ca.uhn.fhir.rest.server.RestfulServer;
import ca.uhn.fhir.rest.server.interceptor.RequestValidatingInterceptor;
import ca.uhn.fhir.rest.server.provider.ResourceProviderFactory;
import ca.uhn.fhir.rest.server.util.ISearchParamRegistry;
import ca.uhn.fhir.validation.IInstanceValidatorModule;
import ca.uhn.fhir.validation.ResultSeverityEnum;
import org.eclipse.jetty.ee10.servlet.ServletContextHandler;
import org.eclipse.jetty.ee10.servlet.ServletHolder;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.hl7.fhir.instance.model.api.IBaseResource;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.context.annotation.AnnotationConfigApplicationContext;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;

/**
 * A HAPI FHIR JPA server (R4) on embedded Jetty: HAPI's JPA Spring configuration plus a
 * RestfulServer servlet at /fhir, bound to 127.0.0.1. See {@link LauncherOptions} for the
 * arguments. Prints "HAPI FHIR ready at URL" on stdout once requests are answered.
 */
public final class HapiServer {
	private static final Logger ourLog = LoggerFactory.getLogger(HapiServer.class);

	public static void main(String[] args) throws Exception {
		long t0 = System.nanoTime();
		LauncherOptions opts;
		try {
			opts = LauncherOptions.parse(args);
		} catch (IllegalArgumentException e) {
			System.err.println("hapi-launcher: " + e.getMessage());
			System.err.println(
					"usage: HapiServer --port N --data-dir DIR [--client-id-strategy ALPHANUMERIC|NOT_ALLOWED|ANY]"
							+ " [--validate-profiles DIR] [--subscriptions] [--db-pool N]");
			System.exit(2);
			return;
		}
		Files.createDirectories(opts.dataDir);
		ourLog.info("Starting HAPI FHIR JPA server: {}", opts);

		AnnotationConfigApplicationContext spring = new AnnotationConfigApplicationContext();
		spring.registerBean(LauncherOptions.class, () -> opts);
		spring.register(JpaServerConfig.class);
		if (opts.subscriptions) {
			spring.register(SubscriptionSubmitterConfig.class, SubscriptionProcessorConfig.class);
		}
		spring.refresh();
		spring.registerShutdownHook();

		RestfulServer fhir = restfulServer(spring, opts);
		if (opts.validateProfilesDir != null) {
			storeConformanceResources(spring, opts);
		}

		Server jetty = new Server();
		ServerConnector connector = new ServerConnector(jetty);
		connector.setHost("127.0.0.1");
		connector.setPort(opts.port);
		jetty.addConnector(connector);
		ServletContextHandler context = new ServletContextHandler();
		context.setContextPath("/");
		ServletHolder holder = new ServletHolder("fhir", fhir);
		holder.setInitOrder(1);
		context.addServlet(holder, "/fhir/*");
		jetty.setHandler(context);
		jetty.setStopAtShutdown(true);
		jetty.start();

		// --port 0: an ephemeral port (install.sh's training run); the ready line tells which.
		String base = "http://127.0.0.1:" + connector.getLocalPort() + "/fhir";
		// The first /metadata builds the CapabilityStatement (seconds): do it before saying ready.
		warmUp(base + "/metadata");
		long ms = (System.nanoTime() - t0) / 1_000_000;
		System.out.println("HAPI FHIR ready at " + base + " (" + ms + " ms after JVM main)");
		System.out.flush();
		jetty.join();
	}

	private static void warmUp(String theUrl) {
		try {
			HttpResponse<Void> r = HttpClient.newHttpClient()
					.send(HttpRequest.newBuilder(URI.create(theUrl)).build(), HttpResponse.BodyHandlers.discarding());
			if (r.statusCode() != 200) {
				ourLog.warn("GET {} answered {}", theUrl, r.statusCode());
			}
		} catch (IOException | InterruptedException e) {
			ourLog.warn("GET {} failed: {}", theUrl, e.toString());
		}
	}

	private static RestfulServer restfulServer(AnnotationConfigApplicationContext theSpring, LauncherOptions theOpts) {
		FhirContext ctx = theSpring.getBean(FhirContext.class);
		RestfulServer server = new RestfulServer(ctx);
		// One interceptor service for REST and storage hooks (as in any HAPI JPA server), so
		// interceptors registered here see the storage pointcuts too.
		server.setInterceptorService(theSpring.getBean(IInterceptorService.class));
		server.setDefaultResponseEncoding(EncodingEnum.JSON);
		server.setPagingProvider(theSpring.getBean(DatabaseBackedPagingProvider.class));

		ResourceProviderFactory resourceProviders =
				theSpring.getBean("myResourceProvidersR4", ResourceProviderFactory.class);
		server.registerProviders(resourceProviders.createProviders());
		server.registerProvider(theSpring.getBean("mySystemProviderR4"));

		IFhirSystemDao<?, ?> systemDao = theSpring.getBean("mySystemDaoR4", IFhirSystemDao.class);
		JpaCapabilityStatementProvider capabilities = new JpaCapabilityStatementProvider(
				server,
				systemDao,
				theSpring.getBean(JpaStorageSettings.class),
				theSpring.getBean(ISearchParamRegistry.class),
				theSpring.getBean(IValidationSupport.class));
		capabilities.setImplementationDescription("cht-fhir-mediator test stack: HAPI FHIR JPA server (R4)");
		server.setServerConformanceProvider(capabilities);

		if (theOpts.retryVersionConflicts) {
			server.registerInterceptor(new UserRequestRetryVersionConflictsInterceptor());
		}
		if (theOpts.validateProfilesDir != null) {
			RequestValidatingInterceptor validating = new RequestValidatingInterceptor();
			validating.addValidatorModule(theSpring.getBean("myInstanceValidator", IInstanceValidatorModule.class));
			validating.setFailOnSeverity(ResultSeverityEnum.ERROR);
			validating.setAddResponseHeaderOnSeverity(null);
			validating.setAddResponseOutcomeHeaderOnSeverity(ResultSeverityEnum.INFORMATION);
			server.registerInterceptor(validating);
		}
		return server;
	}

	/**
	 * Stores every *.json conformance resource of the profiles directory (StructureDefinition,
	 * ValueSet, CodeSystem...) into the server, as an operator would upload them. HAPI's JPA
	 * validation support then finds them by canonical URL and generates the snapshots of
	 * differential-only StructureDefinitions.
	 */
	@SuppressWarnings({"unchecked", "rawtypes"})
	private static void storeConformanceResources(AnnotationConfigApplicationContext theSpring, LauncherOptions theOpts)
			throws IOException {
		FhirContext ctx = theSpring.getBean(FhirContext.class);
		DaoRegistry daos = theSpring.getBean(DaoRegistry.class);
		boolean clientIds = theOpts.clientIdStrategy != JpaStorageSettings.ClientIdStrategyEnum.NOT_ALLOWED;
		List<Path> files;
		try (Stream<Path> s = Files.list(theOpts.validateProfilesDir)) {
			files = s.filter(p -> p.toString().endsWith(".json")).sorted().toList();
		}
		for (Path file : files) {
			IBaseResource res = ctx.newJsonParser().parseResource(Files.readString(file));
			IFhirResourceDao dao = daos.getResourceDao(res);
			SystemRequestDetails req = new SystemRequestDetails();
			String url = ctx.newTerser().getSinglePrimitiveValueOrNull(res, "url");
			if (clientIds && res.getIdElement().hasIdPart()) {
				dao.update(res, req);
			} else if (url != null) {
				// Server-assigned ids: match on the canonical URL, so a restart on an existing
				// database updates the stored copy instead of failing on a second one (HAPI-0902).
				res.setId((String) null);
				dao.update(res, res.fhirType() + "?url=" + url, req);
			} else {
				res.setId((String) null);
				dao.create(res, req);
			}
			ourLog.info("Stored {} from {}", res.getIdElement().toUnqualifiedVersionless(), file.getFileName());
		}
	}
}
