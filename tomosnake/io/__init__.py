"""The I/O layer: scan readers (plain and stitched), .tori files, HDF5 virtual datasets, atomic writes, the volume's
pyramid levels and the input fingerprint."""
