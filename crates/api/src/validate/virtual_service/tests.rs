//! Unit tests for VirtualService rules the conformance cases do not reach.
