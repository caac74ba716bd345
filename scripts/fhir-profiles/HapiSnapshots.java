import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.context.support.DefaultProfileValidationSupport;
import ca.uhn.fhir.context.support.ValidationSupportContext;
import org.hl7.fhir.common.hapi.validation.support.CommonCodeSystemsTerminologyService;
import org.hl7.fhir.common.hapi.validation.support.InMemoryTerminologyServerValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.PrePopulatedValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.SnapshotGeneratingValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.ValidationSupportChain;
import org.hl7.fhir.instance.model.api.IBaseResource;
import org.hl7.fhir.r4.model.StructureDefinition;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

/**
 * The snapshots HAPI's SnapshotGeneratingValidationSupport (HL7's ProfileUtilities) generates
 * for the StructureDefinitions of a directory, with the chain scripts/stack/hapi's validator uses
 * (R4 core from hapi-fhir-validation-resources-r4). For comparison with snapshots.mjs only; run by
 * hapi-compare.sh on differential-only copies of the profiles.
 *
 *   java -cp "$HAPI_CACHE/app/lib/*" HapiSnapshots.java IN_DIR OUT_DIR [TYPE...]
 *
 * Each TYPE (Patient, Identifier...) also gets HAPI's own core definition written to
 * OUT_DIR/base/TYPE.json, the base the generated snapshots start from.
 */
public final class HapiSnapshots {
	public static void main(String[] args) throws Exception {
		Path in = Path.of(args[0]);
		Path out = Path.of(args[1]);
		Files.createDirectories(out);
		FhirContext ctx = FhirContext.forR4();
		List<Path> files;
		try (Stream<Path> s = Files.list(in)) {
			files = s.filter(p -> p.toString().endsWith(".json")).sorted().toList();
		}
		PrePopulatedValidationSupport profiles = new PrePopulatedValidationSupport(ctx);
		List<Path> definitions = new ArrayList<>();
		for (Path f : files) {
			IBaseResource res = ctx.newJsonParser().parseResource(Files.readString(f));
			profiles.addResource(res);
			if (res instanceof StructureDefinition) {
				definitions.add(f);
			}
		}
		ValidationSupportChain chain = new ValidationSupportChain(
				new DefaultProfileValidationSupport(ctx),
				profiles,
				new CommonCodeSystemsTerminologyService(ctx),
				new InMemoryTerminologyServerValidationSupport(ctx),
				new SnapshotGeneratingValidationSupport(ctx));
		for (Path f : definitions) {
			StructureDefinition sd = (StructureDefinition) ctx.newJsonParser().parseResource(Files.readString(f));
			IBaseResource generated = chain.generateSnapshot(
					new ValidationSupportContext(chain), sd, sd.getUrl(), null, sd.getName());
			String json = generated == null
					? "null"
					: ctx.newJsonParser().setPrettyPrint(true).encodeResourceToString(generated);
			Files.writeString(out.resolve(f.getFileName()), json + "\n");
			System.err.println(f.getFileName() + ": " + (generated == null ? "no snapshot" : "written"));
		}
		Files.createDirectories(out.resolve("base"));
		for (String type : List.of(args).subList(2, args.length)) {
			IBaseResource def = chain.fetchStructureDefinition("http://hl7.org/fhir/StructureDefinition/" + type);
			Files.writeString(out.resolve("base").resolve(type + ".json"),
					ctx.newJsonParser().setPrettyPrint(true).encodeResourceToString(def) + "\n");
		}
	}
}
