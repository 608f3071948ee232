"""Stage 1 of the pipeline, the data: the outcomes contract and its reader (`outcomes`), importers
for public layouts (`importers`), the synthetic demo log (`demo`), and the same reading and
checking on a Spark cluster (`spark`)."""
