"""Filter stages: each module registers its stage types in `registry.STAGES`."""
