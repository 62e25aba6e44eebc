//! Azure: reservation and Advisor cost recommendations over the ARM REST API.
