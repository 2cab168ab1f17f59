"""One module per rule of the workflow, holding that rule's logic (its entry in `scripts/` only
unpacks the job's arguments): plan -> preprocess_chunk -> vds_merge -> conversion_range -> recon_chunk -> combine
-> report (`tomosnake.report`) -> cleanup; on the side try_center (in `recon_chunk`, whose reads it shares) and
export (rules ome_zarr, tiff_stack)."""
