"""The rule catalog: one module per rule, discovered by `gradguard.engine.rule.all_rules`."""
