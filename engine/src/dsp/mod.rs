//! Signal processing kernels. Everything here is realtime-safe after
//! construction unless its doc says otherwise; SIMD kernels each have a
//! scalar reference and a proptest that they agree.
#![deny(unsafe_code)] // allowed only in the files that say so
#![allow(clippy::needless_range_loop)] // index loops are what LLVM vectorises best here

pub mod meter;
pub mod mix;
pub mod pan;
pub mod signal;
