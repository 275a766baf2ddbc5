//! Catalog search through an index, with the semantics of the listing's `LIKE`.
//!
//! The listing keeps its condition, `lower(image_name) LIKE lower('%…%')` or the same on the
//! description (case-insensitive, `%` and `_` literal). What makes it fast differs by backend:
//!
//! * PostgreSQL has trigram GIN indexes on exactly those lowered columns (`images_name_trgm`,
//!   `images_description_trgm`), which serve the `LIKE` itself; [`SearchIndex`] adds nothing there.
//! * SQLite cannot index a `LIKE '%…%'`, so [`SearchIndex`] adds `id IN (…)` over the FTS5 trigram table
//!   `images_search`, a phrase query that finds every row holding the text (folding case, so a superset of
//!   what the `LIKE` keeps); the `LIKE` then decides on those rows alone. A text of fewer than three
//!   characters has no trigram, and is left to the `LIKE` over every row.

use diesel::{
    QueryResult,
    expression::{AppearsOnTable, Expression, ValidGrouping, is_aggregate},
    pg::Pg,
    query_builder::{AstPass, QueryFragment, QueryId},
    sql_types::{Bool, Text},
    sqlite::Sqlite,
};

use crate::schema::images;

/// The shortest text the trigram index can find.
const MIN_INDEXED_CHARS: usize = 3;

/// The index's part of a catalog search for a text: the candidate rows, on SQLite; always true on
/// PostgreSQL, whose indexes serve the `LIKE` directly.
#[derive(Debug, Clone)]
pub(crate) struct SearchIndex {
    /// The FTS5 phrase query, or `None` when the text is too short for the index.
    phrase: Option<String>,
}

impl SearchIndex {
    pub(crate) fn new(text: &str) -> Self {
        let phrase = (text.chars().count() >= MIN_INDEXED_CHARS).then(|| phrase_query(text));
        SearchIndex { phrase }
    }
}

/// An FTS5 phrase: the text between double quotes, each quote in it doubled; nothing else in it is syntax.
fn phrase_query(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

impl Expression for SearchIndex {
    type SqlType = Bool;
}

impl AppearsOnTable<images::table> for SearchIndex {}

impl ValidGrouping<()> for SearchIndex {
    type IsAggregate = is_aggregate::No;
}

impl QueryId for SearchIndex {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl QueryFragment<Sqlite> for SearchIndex {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        match &self.phrase {
            Some(phrase) => {
                out.push_sql("`images`.`id` IN (SELECT rowid FROM images_search WHERE images_search MATCH ");
                out.push_bind_param::<Text, _>(phrase)?;
                out.push_sql(")");
            }
            None => out.push_sql("1 = 1"),
        }
        Ok(())
    }
}

impl QueryFragment<Pg> for SearchIndex {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("1 = 1");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use diesel::{debug_query, prelude::*};

    use super::*;

    #[test]
    fn quotes_in_the_text_are_doubled() {
        assert_eq!(phrase_query(r#"say "hi""#), r#""say ""hi""""#);
        assert_eq!(phrase_query("100% a_b*"), r#""100% a_b*""#);
    }

    #[test]
    fn sqlite_looks_the_text_up_in_the_trigram_table() {
        let query = images::table.select(images::id).filter(SearchIndex::new("ReDiS"));
        let sql = debug_query::<Sqlite, _>(&query).to_string();
        assert!(
            sql.contains("`images`.`id` IN (SELECT rowid FROM images_search WHERE images_search MATCH ?)"),
            "{sql}"
        );
        assert!(sql.ends_with(r#"-- binds: ["\"ReDiS\""]"#), "{sql}");
    }

    #[test]
    fn a_text_too_short_for_trigrams_and_postgres_add_no_condition() {
        let short = images::table.select(images::id).filter(SearchIndex::new("ré"));
        assert!(debug_query::<Sqlite, _>(&short).to_string().contains("WHERE 1 = 1 -- binds: []"));
        let pg = images::table.select(images::id).filter(SearchIndex::new("redis"));
        assert!(debug_query::<Pg, _>(&pg).to_string().contains("WHERE 1 = 1 -- binds: []"));
    }
}
