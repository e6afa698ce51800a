"""The indexer: the job's Kafka result topics into Elasticsearch (`churnstream index`).

    Indexer(settings, IndexerOptions()).run()  -> IndexerTotals
"""

from indexer.kafka_to_es import Indexer, IndexerOptions, IndexerTotals

__all__ = ["Indexer", "IndexerOptions", "IndexerTotals"]
