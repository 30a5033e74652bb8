//! rumpuser-posix
