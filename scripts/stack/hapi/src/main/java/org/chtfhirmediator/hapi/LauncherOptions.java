package org.chtfhirmediator.hapi;

import ca.uhn.fhir.jpa.api.config.JpaStorageSettings.ClientIdStrategyEnum;

import java.nio.file.Path;

/**
 * What the launcher was asked for on its command line.
 *
 * <pre>
 *   --port N                    (required) HTTP port on 127.0.0.1; base URL http://127.0.0.1:N/fhir
 *                               (0: an ephemeral port, named in the "ready" line)
 *   --data-dir DIR              (required) H2 database directory (created if missing)
 *   --client-id-strategy S      ALPHANUMERIC (default, as HAPI ships), NOT_ALLOWED or ANY
 *   --validate-profiles DIR     request validation ON (HAPI's FhirInstanceValidator, errors refuse
 *                               the request) against base R4 plus every *.json conformance resource
 *                               in DIR, stored into the server at start
 *   --subscriptions             enable the Subscription module (rest-hook channel)
 *   --retry-version-conflicts   register HAPI's UserRequestRetryVersionConflictsInterceptor: a
 *                               request carrying "X-Retry-On-Version-Conflict: retry; max-retries=N"
 *                               is retried on a version conflict instead of answering 409 (HAPI's
 *                               starter does not register it)
 *   --db-pool N                 JDBC connection pool size (default 10, the starter's pool size)
 * </pre>
 */
final class LauncherOptions {
	final int port;
	final Path dataDir;
	final ClientIdStrategyEnum clientIdStrategy;
	final Path validateProfilesDir; // null: request validation off
	final boolean subscriptions;
	final boolean retryVersionConflicts;
	final int dbPool;

	private LauncherOptions(
			int port,
			Path dataDir,
			ClientIdStrategyEnum clientIdStrategy,
			Path validateProfilesDir,
			boolean subscriptions,
			boolean retryVersionConflicts,
			int dbPool) {
		this.port = port;
		this.dataDir = dataDir;
		this.clientIdStrategy = clientIdStrategy;
		this.validateProfilesDir = validateProfilesDir;
		this.subscriptions = subscriptions;
		this.retryVersionConflicts = retryVersionConflicts;
		this.dbPool = dbPool;
	}

	static LauncherOptions parse(String[] args) {
		Integer port = null;
		Path dataDir = null;
		ClientIdStrategyEnum strategy = ClientIdStrategyEnum.ALPHANUMERIC;
		Path profiles = null;
		boolean subscriptions = false;
		boolean retry = false;
		int dbPool = 10;
		for (int i = 0; i < args.length; i++) {
			String a = args[i];
			switch (a) {
				case "--port" -> port = Integer.parseInt(value(args, ++i, a));
				case "--data-dir" -> dataDir = Path.of(value(args, ++i, a));
				case "--client-id-strategy" -> strategy = ClientIdStrategyEnum.valueOf(value(args, ++i, a));
				case "--validate-profiles" -> profiles = Path.of(value(args, ++i, a));
				case "--subscriptions" -> subscriptions = true;
				case "--retry-version-conflicts" -> retry = true;
				case "--db-pool" -> dbPool = Integer.parseInt(value(args, ++i, a));
				default -> throw new IllegalArgumentException("unknown argument: " + a);
			}
		}
		if (port == null || dataDir == null) {
			throw new IllegalArgumentException("--port and --data-dir are required");
		}
		return new LauncherOptions(port, dataDir.toAbsolutePath(), strategy, profiles, subscriptions, retry, dbPool);
	}

	private static String value(String[] args, int i, String name) {
		if (i >= args.length) {
			throw new IllegalArgumentException(name + " needs a value");
		}
		return args[i];
	}

	@Override
	public String toString() {
		return "port=" + port + " data-dir=" + dataDir + " client-id-strategy=" + clientIdStrategy
				+ " validate-profiles=" + (validateProfilesDir == null ? "off" : validateProfilesDir)
				+ " subscriptions=" + (subscriptions ? "rest-hook" : "off") + " retry-version-conflicts="
				+ retryVersionConflicts + " db-pool=" + dbPool;
	}
}
