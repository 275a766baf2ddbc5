//! The connection the operations run on, and the contract between them and the two backends.
//!
//! [`Conn`] is a connection of either backend. Queries run on it through [`RunQueryDsl`], whose methods
//! require the query to build for SQLite *and* for PostgreSQL: a query only one backend supports does
//! not compile. [`Condition`] and [`Ordering`] are the optional `WHERE` and run-time `ORDER BY` parts
//! of listings, held as SQL both backends can render.
//!
//! What differs between the backends (row locks, `SKIP LOCKED`, the job channel) is [`Dialect`], which
//! `sqlite.rs` and `postgres.rs` each implement once; [`Conn::dialect`] hands out the one that applies.

use std::{future::Future, marker::PhantomData};

use async_trait::async_trait;
use diesel::{
    QueryResult, Selectable,
    backend::Backend,
    expression::{AppearsOnTable, Expression, ValidGrouping, expression_types::NotSelectable, is_aggregate},
    pg::Pg,
    query_builder::{AstPass, QueryFragment, QueryId},
    query_dsl::methods::LimitDsl,
    sql_types::{Bool, BoolOrNullableBool, Nullable},
    sqlite::{Sqlite, SqliteConnection},
};
use diesel_async::{
    AsyncConnection, AsyncPgConnection,
    methods::{ExecuteDsl, LoadQuery},
    sync_connection_wrapper::SyncConnectionWrapper,
};
use futures::{FutureExt as _, future::BoxFuture};

use crate::{
    error::DbResult,
    models::{ImageRow, ImportRow, JobRow, Micros, RegistrySecretRow, RepositoryRow, RequestRow},
};

/// A SQLite connection: diesel's synchronous one, run on tokio's blocking pool.
pub(crate) type SqliteConn = SyncConnectionWrapper<SqliteConnection>;

/// A PostgreSQL connection.
pub(crate) type PgConn = AsyncPgConnection;

/// A connection of either backend, borrowed from the pool for one operation.
pub(crate) enum Conn<'c> {
    Sqlite(&'c mut SqliteConn),
    Postgres(&'c mut PgConn),
}

/// The steps whose SQL differs between the backends: reads that lock what they read until the
/// transaction ends, and the announcement of a queued job.
///
/// On PostgreSQL the locks are row locks (`FOR UPDATE`, `FOR KEY SHARE`, `SKIP LOCKED` where concurrent
/// callers should take different rows). On SQLite a write transaction holds the store's writer lock and
/// began `IMMEDIATE`, so a plain read inside it is as good as a lock.
#[async_trait]
pub(crate) trait Dialect: Send {
    async fn lock_image(&mut self, id: i64) -> QueryResult<Option<ImageRow>>;

    async fn lock_image_named(
        &mut self,
        registry: &str,
        namespace: &str,
        image_name: &str,
    ) -> QueryResult<Option<ImageRow>>;

    async fn lock_request(&mut self, id: i64) -> QueryResult<Option<RequestRow>>;

    async fn lock_import(&mut self, id: i64) -> QueryResult<Option<ImportRow>>;

    /// The job, if `worker` holds its lease.
    async fn lock_held_job(&mut self, id: i64, worker: &str) -> QueryResult<Option<JobRow>>;

    /// The id of the job a claim should take: due (queued and `run_at` passed, or leased with the lease
    /// ended), of one of `job_types`, highest priority first, then oldest; no other claim can take it
    /// until this transaction ends.
    async fn lock_next_due_job(&mut self, job_types: &[String], now: Micros) -> QueryResult<Option<i64>>;

    /// Tells the workers that listen for queued jobs that one is due, when the transaction commits.
    async fn notify_job_queued(&mut self) -> QueryResult<()>;

    async fn lock_registry_secret(&mut self, namespace: &str, name: &str) -> QueryResult<Option<RegistrySecretRow>>;

    /// The registry secret's domain, the secret kept from being deleted until the transaction ends.
    async fn share_registry_secret(&mut self, namespace: &str, name: &str) -> QueryResult<Option<String>>;

    async fn lock_repository(&mut self, namespace: &str, name: &str) -> QueryResult<Option<RepositoryRow>>;

    /// The repositories whose sync is due at `now` and that have no job, or a job_id whose job is gone, in
    /// the order they fell due; no other scheduler can take them until this transaction ends.
    async fn lock_due_repositories(&mut self, now: Micros) -> QueryResult<Vec<RepositoryRow>>;
}

/// An operation on a connection whose future may move between threads, as the transactions of
/// diesel-async and the store's detached tasks require. Every `async |conn| …` closure whose future is
/// `Send` is one.
pub(crate) trait ConnOp<'r, T>:
    AsyncFnOnce(&'r mut Conn<'r>) -> DbResult<T> + FnOnce(&'r mut Conn<'r>) -> Self::Fut
{
    type Fut: Future<Output = DbResult<T>> + Send;
}

impl<'r, T, F, Fut> ConnOp<'r, T> for F
where
    F: AsyncFnOnce(&'r mut Conn<'r>) -> DbResult<T> + FnOnce(&'r mut Conn<'r>) -> Fut,
    Fut: Future<Output = DbResult<T>> + Send,
{
    type Fut = Fut;
}

impl Conn<'_> {
    /// The backend-specific steps of this connection's backend.
    pub(crate) fn dialect(&mut self) -> &mut dyn Dialect {
        match self {
            Conn::Sqlite(conn) => &mut **conn,
            Conn::Postgres(conn) => &mut **conn,
        }
    }

    /// Runs `op` in a transaction: at the top level, a plain `BEGIN` (on SQLite, the caller then holds the
    /// writer lock and wants [`Conn::write_transaction`]); inside a transaction, a savepoint, so that a
    /// failure `op` expects rolls back its part and leaves the transaction usable.
    pub(crate) async fn transaction<T, F>(&mut self, op: F) -> DbResult<T>
    where
        T: Send,
        for<'r> F: AsyncFnOnce(&'r mut Conn<'r>) -> DbResult<T> + ConnOp<'r, T> + Send,
    {
        match self {
            Conn::Sqlite(conn) => conn.transaction(async |conn| op(&mut Conn::Sqlite(conn)).await).await,
            Conn::Postgres(conn) => conn.transaction(async |conn| op(&mut Conn::Postgres(conn)).await).await,
        }
    }

    /// Runs `op` in a write transaction: `BEGIN IMMEDIATE` on SQLite (the caller holds the store's writer
    /// lock), an ordinary READ COMMITTED transaction on PostgreSQL.
    pub(crate) async fn write_transaction<T, F>(&mut self, op: F) -> DbResult<T>
    where
        T: Send,
        for<'r> F: AsyncFnOnce(&'r mut Conn<'r>) -> DbResult<T> + ConnOp<'r, T> + Send,
    {
        match self {
            Conn::Sqlite(conn) => conn.immediate_transaction(async |conn| op(&mut Conn::Sqlite(conn)).await).await,
            Conn::Postgres(conn) => conn.transaction(async |conn| op(&mut Conn::Postgres(conn)).await).await,
        }
    }
}

/// diesel-async's `RunQueryDsl` for a [`Conn`]: the same methods, each bounded so that the query runs on
/// both backends. The operations import this one instead of diesel's and diesel-async's.
///
/// The futures are boxed, `Send` by their type: the tasks that run the operations move between threads,
/// and a future whose `Send` had to be proven from these bounds would not be, inside a transaction's
/// closure (the compiler cannot prove it for every lifetime there).
pub(crate) trait RunQueryDsl: Sized {
    /// The number of rows an `INSERT`, `UPDATE` or `DELETE` touched.
    fn execute<'c>(self, conn: &'c mut Conn<'_>) -> BoxFuture<'c, QueryResult<usize>>
    where
        Self: ExecuteDsl<SqliteConn> + ExecuteDsl<PgConn> + Send + 'c,
    {
        match conn {
            Conn::Sqlite(conn) => diesel_async::RunQueryDsl::execute(self, &mut **conn).boxed(),
            Conn::Postgres(conn) => diesel_async::RunQueryDsl::execute(self, &mut **conn).boxed(),
        }
    }

    fn load<'c, U>(self, conn: &'c mut Conn<'_>) -> BoxFuture<'c, QueryResult<Vec<U>>>
    where
        U: Send + 'c,
        Self: LoadQuery<'c, SqliteConn, U> + LoadQuery<'c, PgConn, U> + Send + 'c,
    {
        match conn {
            Conn::Sqlite(conn) => diesel_async::RunQueryDsl::load(self, &mut **conn).boxed(),
            Conn::Postgres(conn) => diesel_async::RunQueryDsl::load(self, &mut **conn).boxed(),
        }
    }

    /// The first row; `Err(NotFound)` when there is none.
    fn get_result<'c, U>(self, conn: &'c mut Conn<'_>) -> BoxFuture<'c, QueryResult<U>>
    where
        U: Send + 'c,
        Self: LoadQuery<'c, SqliteConn, U> + LoadQuery<'c, PgConn, U> + Send + 'c,
    {
        match conn {
            Conn::Sqlite(conn) => diesel_async::RunQueryDsl::get_result(self, &mut **conn).boxed(),
            Conn::Postgres(conn) => diesel_async::RunQueryDsl::get_result(self, &mut **conn).boxed(),
        }
    }

    /// `.limit(1).get_result(conn)`.
    fn first<'c, U>(self, conn: &'c mut Conn<'_>) -> BoxFuture<'c, QueryResult<U>>
    where
        U: Send + 'c,
        Self: LimitDsl,
        diesel::dsl::Limit<Self>: LoadQuery<'c, SqliteConn, U> + LoadQuery<'c, PgConn, U> + Send + 'c,
    {
        RunQueryDsl::get_result(self.limit(1), conn)
    }
}

impl<T> RunQueryDsl for T {}

/// The columns of row type `R` in the order of its fields, the order in which its `Queryable` reads them:
/// a select or `RETURNING` clause for both backends (diesel's `as_select()` belongs to one).
pub(crate) fn columns<R>() -> <R as Selectable<Sqlite>>::SelectExpression
where
    R: Selectable<Sqlite> + Selectable<Pg, SelectExpression = <R as Selectable<Sqlite>>::SelectExpression>,
{
    <R as Selectable<Sqlite>>::construct_selection()
}

/// A piece of SQL that both backends can render.
pub(crate) trait Portable: QueryFragment<Sqlite> + QueryFragment<Pg> + Send + Sync {}

impl<T> Portable for T where T: QueryFragment<Sqlite> + QueryFragment<Pg> + Send + Sync {}

/// Conditions on the rows of table `T`, all of which must hold; built at run time, so a listing adds
/// only the filters it was given. With none it renders as `1 = 1`.
pub(crate) struct Condition<'a, T> {
    parts: Vec<Box<dyn Portable + 'a>>,
    table: PhantomData<T>,
}

impl<'a, T> Condition<'a, T> {
    pub(crate) fn new() -> Self {
        Condition { parts: Vec::new(), table: PhantomData }
    }

    /// Adds a condition on the table's rows.
    pub(crate) fn push<E>(&mut self, condition: E)
    where
        E: AppearsOnTable<T> + ValidGrouping<(), IsAggregate = is_aggregate::No> + Portable + 'a,
        E::SqlType: BoolOrNullableBool,
    {
        self.parts.push(Box::new(condition));
    }
}

impl<T> Expression for Condition<'_, T> {
    type SqlType = Nullable<Bool>;
}

impl<T> AppearsOnTable<T> for Condition<'_, T> {}

impl<T> ValidGrouping<()> for Condition<'_, T> {
    type IsAggregate = is_aggregate::No;
}

impl<T> QueryId for Condition<'_, T> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<'a, T, DB> QueryFragment<DB> for Condition<'a, T>
where
    DB: Backend,
    dyn Portable + 'a: QueryFragment<DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        if self.parts.is_empty() {
            out.push_sql("1 = 1");
        }
        for (i, part) in self.parts.iter().enumerate() {
            if i > 0 {
                out.push_sql(" AND ");
            }
            out.push_sql("(");
            QueryFragment::<DB>::walk_ast(&**part, out.reborrow())?;
            out.push_sql(")");
        }
        Ok(())
    }
}

/// An `ORDER BY` of table `T` chosen at run time.
pub(crate) struct Ordering<T> {
    terms: Box<dyn Portable>,
    table: PhantomData<T>,
}

impl<T> Ordering<T> {
    pub(crate) fn by<E>(terms: E) -> Self
    where
        E: AppearsOnTable<T> + ValidGrouping<(), IsAggregate = is_aggregate::No> + Portable + 'static,
    {
        Ordering { terms: Box::new(terms), table: PhantomData }
    }
}

impl<T> Expression for Ordering<T> {
    type SqlType = NotSelectable;
}

impl<T> AppearsOnTable<T> for Ordering<T> {}

impl<T> ValidGrouping<()> for Ordering<T> {
    type IsAggregate = is_aggregate::No;
}

impl<T> QueryId for Ordering<T> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<T, DB> QueryFragment<DB> for Ordering<T>
where
    DB: Backend,
    dyn Portable: QueryFragment<DB>,
{
    fn walk_ast<'b>(&'b self, out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        QueryFragment::<DB>::walk_ast(&*self.terms, out)
    }
}

#[cfg(test)]
mod tests {
    use diesel::{debug_query, prelude::*};

    use super::*;
    use crate::schema::images;

    fn sql<T: QueryFragment<Sqlite> + QueryFragment<Pg>>(query: &T) -> (String, String) {
        (debug_query::<Sqlite, _>(query).to_string(), debug_query::<Pg, _>(query).to_string())
    }

    #[test]
    fn an_empty_condition_holds_for_every_row() {
        let (sqlite, pg) = sql(&images::table.select(images::id).filter(Condition::<images::table>::new()));
        assert!(sqlite.contains("WHERE 1 = 1"), "{sqlite}");
        assert!(pg.contains("WHERE 1 = 1"), "{pg}");
    }

    #[test]
    fn conditions_are_grouped_and_joined_with_and() {
        let mut condition = Condition::<images::table>::new();
        condition.push(images::category.eq("db"));
        condition.push(images::is_official.eq(true).or(images::approval_status.eq("approved")));
        let (sqlite, pg) = sql(&images::table.select(images::id).filter(condition));
        let expected = "WHERE ((`images`.`category` = ?)) AND \
                        (((`images`.`is_official` = ?) OR (`images`.`approval_status` = ?)))";
        assert!(sqlite.contains(expected), "{sqlite}");
        let expected = r#"WHERE (("images"."category" = $1)) AND ((("images"."is_official" = $2) OR ("images"."approval_status" = $3)))"#;
        assert!(pg.contains(expected), "{pg}");
    }

    #[test]
    fn an_ordering_renders_its_terms() {
        let query = images::table.select(images::id).order(Ordering::by((images::category.desc(), images::id.desc())));
        let (sqlite, pg) = sql(&query);
        assert!(sqlite.ends_with("ORDER BY `images`.`category` DESC, `images`.`id` DESC -- binds: []"), "{sqlite}");
        assert!(pg.ends_with(r#"ORDER BY "images"."category" DESC, "images"."id" DESC -- binds: []"#), "{pg}");
    }
}
