"""tierd_daemon: the tierd service (engine, NVMe store, and later the DRAM tier).

Only the daemon imports lmdb, cffi, zstandard and the native module.
"""
__version__ = "0.1.0"
