DROP INDEX recommendations_by_source;
