"""Search spaces: the op registry, the space model, built-in and TOML spaces, architectures."""
