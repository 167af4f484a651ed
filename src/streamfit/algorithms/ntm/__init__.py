"""SageMaker's Neural Topic Model, built as ProdLDA: topics from a stream of documents."""
