"""Plans: what a change to nebula.yaml would change, typed, summarized and rendered."""
