//! Azure backend tests against a fake ARM and Entra ID.
