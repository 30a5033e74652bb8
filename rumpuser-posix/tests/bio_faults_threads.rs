//! Fault injection on the thread-pool back end (one process per back end).
mod faults;

#[test]
fn every_request_completes_exactly_once_under_faults_threads() {
    std::env::set_var("RUMPUSER_BIO", "threads");
    faults::run("threads");
}
