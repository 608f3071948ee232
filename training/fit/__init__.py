"""Stage 3, fitting: the pipeline that runs the stages (`pipeline.train`), head selection by the
routing metric and the default target (`selection`), and the learned verifier with its cascade
plans (`verifier`)."""
