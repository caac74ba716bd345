//! Pure conversions between CHT documents and FHIR resources (no I/O), arriving with the
//! inbound and outbound work.
