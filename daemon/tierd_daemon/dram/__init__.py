"""The DRAM hot tier: shared-memory arenas, index, eviction, write-back."""
