//! rumpuser-baremetal: placeholder until its issue is implemented.
#![no_std]
