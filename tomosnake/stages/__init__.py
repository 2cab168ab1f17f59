"""One module per rule of the workflow, holding that rule's logic (its script in `tomosnake/workflow/scripts/` only
unpacks Snakemake's arguments): plan -> preprocess_chunk -> vds_merge -> conversion_range -> recon_chunk -> combine
-> report (`tomosnake.report`) -> cleanup; try_center, and export (rules ome_zarr, tiff_stack) on the side."""
