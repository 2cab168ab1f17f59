"""The scan's PDF report (rule report): `pdf` lays it out, `previews` saves the images of the
raw and pre-processed data it shows (in the vds_merge job), `figures` draws, `timings` records each job's
times and summarises them."""
