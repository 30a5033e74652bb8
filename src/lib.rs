//! Integration tests and benchmarks live in tests/ and benches/.
#![deny(unsafe_code)]
