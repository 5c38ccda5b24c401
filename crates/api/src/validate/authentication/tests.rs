//! PeerAuthentication and RequestAuthentication validation cases the conformance data does not cover.
