"""Layer 2: the stack configuration (a pydantic model, validated as a whole) and the stack's names."""
