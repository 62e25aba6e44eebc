//! The live backends against local fake servers that speak each API's
//! documented wire format.

mod aws;
mod azure;
mod gcp;
mod support;
