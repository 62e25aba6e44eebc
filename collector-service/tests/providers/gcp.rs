//! GCP backend tests against a fake Recommender, Compute and token endpoint.
