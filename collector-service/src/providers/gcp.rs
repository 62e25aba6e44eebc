//! GCP: Recommender API commitment recommendations over REST.
