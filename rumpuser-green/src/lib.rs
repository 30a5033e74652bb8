//! rumpuser-green
