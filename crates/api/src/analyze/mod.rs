//! Istio's cross-resource analysis (`istioctl analyze`), placeholder until the analyzers land.
