"""churnstream: real-time customer-churn analytics on Kafka, PyFlink and Elasticsearch.

This package is the top floor: the `churnstream` command (cli.py, commands/), `verify` and the
independent recomputation it compares with (expected.py). Below it: the components (generator/,
flink_jobs/, kibana/), and under those the foundation (foundation/).
"""
