//! Fault injection on the io_uring back end (one process per back end).
mod faults;

#[test]
fn every_request_completes_exactly_once_under_faults_uring() {
    faults::run("uring");
}
