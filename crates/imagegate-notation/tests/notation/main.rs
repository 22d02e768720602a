//! The imagegate-notation test binary: real vectors, signer round trips, hostile input,
//! and a registry round trip.

mod vectors;
