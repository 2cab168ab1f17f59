"""The scan's PDF report (rules report and report_previews): `pdf` lays it out, `previews` saves the images of the
raw and pre-processed data it shows, `figures` draws, `timings` records each job's times and summarises them."""
