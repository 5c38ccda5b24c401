//! AuthorizationPolicy validation cases the conformance data does not cover.
