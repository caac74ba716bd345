package org.chtfhirmediator.hapi;

import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.context.support.DefaultProfileValidationSupport;
import ca.uhn.fhir.context.support.IValidationSupport;
import ca.uhn.fhir.validation.FhirValidator;
import ca.uhn.fhir.validation.ResultSeverityEnum;
import ca.uhn.fhir.validation.SingleValidationMessage;
import ca.uhn.fhir.validation.ValidationResult;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.hl7.fhir.common.hapi.validation.support.CommonCodeSystemsTerminologyService;
import org.hl7.fhir.common.hapi.validation.support.InMemoryTerminologyServerValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.PrePopulatedValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.SnapshotGeneratingValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.UnknownCodeSystemWarningValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.ValidationSupportChain;
import org.hl7.fhir.common.hapi.validation.validator.FhirInstanceValidator;
import org.hl7.fhir.instance.model.api.IBaseResource;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * Offline FHIR R4 validation with HL7's validation engine (HAPI's FhirInstanceValidator):
 * base R4 definitions (hapi-fhir-validation-resources-r4), the conformance resources of a
 * profiles directory (snapshots generated from differentials), in-memory terminology, no
 * terminology server. Codes of code systems it has no definition of (LOINC, a project's own
 * CodeSystem URLs...) are warnings, not errors.
 *
 * <pre>
 *   ValidatorCli PROFILES_DIR FILE_OR_DIR...   one JSON line per *.json file (directories walked)
 *   ValidatorCli PROFILES_DIR --stdin          one JSON resource per input line, one answer line each
 * </pre>
 *
 * Each answer: {"file"|"line": ..., "errors": [{"path", "message", "id"?, "resource"?, "resource_path"?}],
 * "warnings": [...]} (plus "information" with --info). Exit status: 0 when no file had an
 * error, 1 when some did, 2 on bad usage or an unreadable profiles directory.
 */
public final class ValidatorCli {
	private static final ObjectMapper JSON = new ObjectMapper();
	// HAPI locations of resources inside a Bundle: Bundle.entry[0].resource/*Patient/p1*/.name[0]
	private static final Pattern RESOURCE_COMMENT = Pattern.compile("/\\*(.*?)\\*/");

	private final FhirContext myCtx;
	private final FhirValidator myValidator;
	private final boolean myInfo;

	ValidatorCli(Path theProfilesDir, boolean theInfo) throws IOException {
		myCtx = FhirContext.forR4();
		myInfo = theInfo;
		PrePopulatedValidationSupport profiles = new PrePopulatedValidationSupport(myCtx);
		for (IBaseResource res : readConformanceResources(myCtx, theProfilesDir)) {
			profiles.addResource(res);
		}
		UnknownCodeSystemWarningValidationSupport unknownSystems = new UnknownCodeSystemWarningValidationSupport(myCtx);
		unknownSystems.setNonExistentCodeSystemSeverity(IValidationSupport.IssueSeverity.WARNING);
		ValidationSupportChain chain = new ValidationSupportChain(
				new DefaultProfileValidationSupport(myCtx),
				profiles,
				new CommonCodeSystemsTerminologyService(myCtx),
				new InMemoryTerminologyServerValidationSupport(myCtx),
				new SnapshotGeneratingValidationSupport(myCtx),
				unknownSystems);
		FhirInstanceValidator instanceValidator = new FhirInstanceValidator(chain);
		myValidator = myCtx.newValidator();
		myValidator.registerValidatorModule(instanceValidator);
	}

	static List<IBaseResource> readConformanceResources(FhirContext theCtx, Path theDir) throws IOException {
		List<Path> files;
		try (Stream<Path> s = Files.list(theDir)) {
			files = s.filter(p -> p.toString().endsWith(".json")).sorted().toList();
		}
		List<IBaseResource> retVal = new ArrayList<>();
		for (Path f : files) {
			retVal.add(theCtx.newJsonParser().parseResource(Files.readString(f)));
		}
		return retVal;
	}

	public static void main(String[] args) throws IOException {
		List<String> rest = new ArrayList<>(List.of(args));
		boolean info = rest.remove("--info");
		if (rest.size() < 2) {
			System.err.println("usage: validate.sh [--info] PROFILES_DIR (FILE_OR_DIR... | --stdin)");
			System.exit(2);
		}
		Path profilesDir = Path.of(rest.remove(0));
		if (!Files.isDirectory(profilesDir)) {
			System.err.println("validate: not a directory: " + profilesDir);
			System.exit(2);
		}
		ValidatorCli cli = new ValidatorCli(profilesDir, info);
		PrintStream out = new PrintStream(System.out, false, StandardCharsets.UTF_8);
		boolean anyError = false;
		if (rest.size() == 1 && rest.get(0).equals("--stdin")) {
			BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
			String line;
			long n = 0;
			while ((line = in.readLine()) != null) {
				n++;
				if (line.isBlank()) {
					continue;
				}
				ObjectNode answer = cli.validate(line);
				answer.put("line", n);
				anyError |= answer.withArray("errors").size() > 0;
				out.println(reorder(answer, "line"));
				out.flush();
			}
		} else {
			for (String arg : rest) {
				for (Path file : jsonFiles(Path.of(arg))) {
					ObjectNode answer;
					try {
						answer = cli.validate(Files.readString(file));
					} catch (IOException e) {
						answer = failure("unreadable: " + e.getMessage());
					}
					answer.put("file", file.toString());
					anyError |= answer.withArray("errors").size() > 0;
					out.println(reorder(answer, "file"));
				}
			}
			out.flush();
		}
		System.exit(anyError ? 1 : 0);
	}

	private static List<Path> jsonFiles(Path theArg) throws IOException {
		if (!Files.isDirectory(theArg)) {
			return List.of(theArg);
		}
		try (Stream<Path> s = Files.walk(theArg)) {
			return s.filter(p -> Files.isRegularFile(p) && p.toString().endsWith(".json")).sorted().toList();
		}
	}

	ObjectNode validate(String theJson) {
		ObjectNode answer = JSON.createObjectNode();
		ArrayNode errors = answer.putArray("errors");
		ArrayNode warnings = answer.putArray("warnings");
		ArrayNode information = myInfo ? answer.putArray("information") : null;
		try {
			JsonNode tree = JSON.readTree(theJson);
			if (tree == null || !tree.isObject() || !tree.path("resourceType").isTextual()) {
				return failure("not a FHIR resource: a JSON object with a resourceType is expected");
			}
		} catch (IOException e) {
			return failure("not JSON: " + e.getMessage().lines().findFirst().orElse(""));
		}
		ValidationResult result;
		try {
			result = myValidator.validateWithResult(theJson);
		} catch (RuntimeException e) {
			return failure("not a FHIR resource: " + e.getMessage());
		}
		for (SingleValidationMessage m : result.getMessages()) {
			ResultSeverityEnum sev = m.getSeverity();
			ArrayNode target = switch (sev) {
				case FATAL, ERROR -> errors;
				case WARNING -> warnings;
				default -> information;
			};
			if (target == null) {
				continue;
			}
			ObjectNode issue = target.addObject();
			String location = m.getLocationString() == null ? "" : m.getLocationString();
			Matcher c = RESOURCE_COMMENT.matcher(location);
			String path = c.replaceAll("");
			issue.put("path", path);
			c.reset();
			if (c.find()) {
				// Inside a Bundle: "Patient/p1" (or "Patient/null" for an entry without id) and the
				// path within that resource, as for a resource validated alone.
				String resource = c.group(1).replaceFirst("/null$", "");
				issue.put("resource", resource);
				String type = resource.contains("/") ? resource.substring(0, resource.indexOf('/')) : resource;
				String rest = location.substring(c.end());
				issue.put("resource_path", type + rest);
			}
			issue.put("message", m.getMessage());
			if (m.getMessageId() != null) {
				issue.put("id", m.getMessageId());
			}
		}
		return answer;
	}

	private static ObjectNode failure(String theMessage) {
		ObjectNode answer = JSON.createObjectNode();
		answer.putArray("errors").addObject().put("path", "").put("message", theMessage);
		answer.putArray("warnings");
		return answer;
	}

	/** The key naming the input first, as the documented format shows it. */
	private static String reorder(ObjectNode theAnswer, String theFirst) {
		ObjectNode retVal = JSON.createObjectNode();
		retVal.set(theFirst, theAnswer.get(theFirst));
		theAnswer.fieldNames().forEachRemaining(k -> {
			if (!k.equals(theFirst)) {
				retVal.set(k, theAnswer.get(k));
			}
		});
		return retVal.toString();
	}
}
