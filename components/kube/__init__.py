"""Layer 1: Kubernetes primitives. Typed manifests, registration, the provider, quantities, and the
handles through which components hand each other what their pods use. Imports nothing of the project."""
