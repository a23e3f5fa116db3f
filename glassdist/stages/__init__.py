"""The stage modules, one per stage of glassdist.pipeline (its records say their order, needs,
kinds and options; glassdist.layout declares their arrays). Each has the same two functions:
``prepare(campaign_dir, spec) -> list[int]`` (rank 0: check the spec against stored results,
create the arrays and the ledger, return the task ids to do now) and ``run(campaign_dir, args) ->
int`` (the exit code: 0 done, 1 failed or stopped work; ``args``: the options of its record)."""
