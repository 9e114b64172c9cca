//! A small statement surface over one PostgreSQL transaction, shaped like the part of
//! rusqlite that `sqlite/rows.rs` uses (`query_row`, `execute`, `query_map`, `optional`,
//! `row.get`), so that `rows.rs` here is the same row code with PostgreSQL's SQL.
//!
//! PostgreSQL types its parameters and columns strictly (an `i32` is not an `INT8`), while the
//! row code passes and reads the natural Rust types (`u32` epochs, `[u8; 16]` ids, `i64`
//! times). [`Value`] bridges the two: a parameter is converted to the type the server inferred
//! for its placeholder, with a range check, and a column is read whatever integer width the
//! server sends. A value that does not fit is an error, never a truncation.

use std::cell::RefCell;
use std::collections::HashMap;
use std::error::Error as StdError;

use postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};
use postgres::{Client, Statement, Transaction as PgTransaction};

/// One SQL value, as the row code passes and reads them.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Value {
    Null,
    Int(i64),
    Bytes(Vec<u8>),
    Text(String),
    /// A `BIGINT[]` parameter, one element per row of a multi-row statement.
    Ints(Vec<Option<i64>>),
    /// A `BYTEA[]` parameter, likewise.
    ByteStrings(Vec<Vec<u8>>),
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Int(_) => "integer",
            Value::Bytes(_) => "bytes",
            Value::Text(_) => "text",
            Value::Ints(_) => "integer array",
            Value::ByteStrings(_) => "bytes array",
        }
    }
}

/// What went wrong in a statement or a conversion.
#[derive(Debug, thiserror::Error)]
pub(super) enum Error {
    #[error(transparent)]
    Postgres(#[from] postgres::Error),
    #[error("the query returned no rows")]
    QueryReturnedNoRows,
    /// A stored value that does not convert back: not what this server wrote.
    #[error("column {0}: {1}")]
    FromSqlConversionFailure(usize, String),
    #[error("integer {1} out of range in column {0}")]
    IntegralValueOutOfRange(usize, i64),
    /// A parameter that does not fit its column.
    #[error("parameter: {0}")]
    ToSqlConversionFailure(String),
    /// A read run as one statement ([`Connection::single`]) made a second one.
    #[error("a read of one statement made a second statement")]
    SecondStatement,
}

pub(super) type Result<T, E = Error> = std::result::Result<T, E>;

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut postgres::types::private::BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(v) => int_to_sql(*v, ty, out),
            Value::Bytes(v) if *ty == Type::BYTEA => v.as_slice().to_sql(ty, out),
            Value::Text(v) if <&str as ToSql>::accepts(ty) => v.as_str().to_sql(ty, out),
            Value::Ints(v) if *ty == Type::INT8_ARRAY => v.to_sql(ty, out),
            Value::ByteStrings(v) if *ty == Type::BYTEA_ARRAY => v.to_sql(ty, out),
            // The kind only: a value may be a bundle's ciphertext, or thousands of them.
            other => Err(format!("a {} value for a {ty} parameter", other.kind()).into()),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn int_to_sql(
    v: i64,
    ty: &Type,
    out: &mut postgres::types::private::BytesMut,
) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
    match *ty {
        Type::INT8 => v.to_sql(ty, out),
        Type::INT4 => i32::try_from(v)?.to_sql(ty, out),
        Type::INT2 => i16::try_from(v)?.to_sql(ty, out),
        _ => Err(format!("an integer for a {ty} parameter").into()),
    }
}

impl<'a> FromSql<'a> for Value {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Value, Box<dyn StdError + Sync + Send>> {
        Ok(match *ty {
            Type::INT8 => Value::Int(i64::from_sql(ty, raw)?),
            Type::INT4 => Value::Int(i32::from_sql(ty, raw)?.into()),
            Type::INT2 => Value::Int(i16::from_sql(ty, raw)?.into()),
            Type::BOOL => Value::Int(bool::from_sql(ty, raw)?.into()),
            Type::BYTEA => Value::Bytes(Vec::<u8>::from_sql(ty, raw)?),
            _ if <String as FromSql>::accepts(ty) => Value::Text(String::from_sql(ty, raw)?),
            _ => return Err(format!("a column of type {ty}").into()),
        })
    }

    fn from_sql_null(_: &Type) -> Result<Value, Box<dyn StdError + Sync + Send>> {
        Ok(Value::Null)
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// A Rust value the row code passes as a parameter.
pub(super) trait ToValue {
    fn to_value(&self) -> Result<Value>;
}

impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Result<Value> {
        (**self).to_value()
    }
}

impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Result<Value> {
        self.as_ref().map_or(Ok(Value::Null), T::to_value)
    }
}

macro_rules! int_to_value {
    ($($t:ty),*) => {$(
        impl ToValue for $t {
            fn to_value(&self) -> Result<Value> {
                i64::try_from(*self)
                    .map(Value::Int)
                    .map_err(|e| Error::ToSqlConversionFailure(e.to_string()))
            }
        }
    )*};
}
int_to_value!(i64, i32, i16, u32, u16, u8, u64, usize);

impl ToValue for bool {
    fn to_value(&self) -> Result<Value> {
        Ok(Value::Int((*self).into()))
    }
}

impl ToValue for [u8] {
    fn to_value(&self) -> Result<Value> {
        Ok(Value::Bytes(self.to_vec()))
    }
}

impl<const N: usize> ToValue for [u8; N] {
    fn to_value(&self) -> Result<Value> {
        Ok(Value::Bytes(self.to_vec()))
    }
}

impl ToValue for Vec<u8> {
    fn to_value(&self) -> Result<Value> {
        Ok(Value::Bytes(self.clone()))
    }
}

impl ToValue for str {
    fn to_value(&self) -> Result<Value> {
        Ok(Value::Text(self.to_owned()))
    }
}

impl ToValue for String {
    fn to_value(&self) -> Result<Value> {
        Ok(Value::Text(self.clone()))
    }
}

/// A column value the row code reads.
pub(super) trait FromValue: Sized {
    fn from_value(value: Value, column: usize) -> Result<Self>;
}

fn mismatch(column: usize, value: &Value, wanted: &str) -> Error {
    let found = match value {
        Value::Null => "NULL",
        Value::Int(_) => "an integer",
        Value::Bytes(_) => "bytes",
        Value::Text(_) => "text",
        Value::Ints(_) | Value::ByteStrings(_) => "an array",
    };
    Error::FromSqlConversionFailure(column, format!("{found} where {wanted} was expected"))
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: Value, column: usize) -> Result<Self> {
        match value {
            Value::Null => Ok(None),
            other => T::from_value(other, column).map(Some),
        }
    }
}

macro_rules! int_from_value {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            fn from_value(value: Value, column: usize) -> Result<Self> {
                match value {
                    Value::Int(v) => <$t>::try_from(v).map_err(|_| Error::IntegralValueOutOfRange(column, v)),
                    other => Err(mismatch(column, &other, "an integer")),
                }
            }
        }
    )*};
}
int_from_value!(i64, i32, i16, u32, u16, u8, u64);

impl FromValue for bool {
    fn from_value(value: Value, column: usize) -> Result<Self> {
        match value {
            Value::Int(0) => Ok(false),
            Value::Int(1) => Ok(true),
            Value::Int(v) => Err(Error::IntegralValueOutOfRange(column, v)),
            other => Err(mismatch(column, &other, "a boolean")),
        }
    }
}

impl FromValue for Vec<u8> {
    fn from_value(value: Value, column: usize) -> Result<Self> {
        match value {
            Value::Bytes(v) => Ok(v),
            other => Err(mismatch(column, &other, "bytes")),
        }
    }
}

impl<const N: usize> FromValue for [u8; N] {
    fn from_value(value: Value, column: usize) -> Result<Self> {
        let bytes = Vec::<u8>::from_value(value, column)?;
        let len = bytes.len();
        bytes.try_into().map_err(|_| {
            Error::FromSqlConversionFailure(column, format!("{len} bytes where {N} were expected"))
        })
    }
}

impl FromValue for String {
    fn from_value(value: Value, column: usize) -> Result<Self> {
        match value {
            Value::Text(v) => Ok(v),
            other => Err(mismatch(column, &other, "text")),
        }
    }
}

/// One result row.
pub(super) struct Row(postgres::Row);

impl Row {
    /// Column `column` as a `T`.
    pub(super) fn get<T: FromValue>(&self, column: usize) -> Result<T> {
        let value: Value = self.0.try_get(column)?;
        T::from_value(value, column)
    }
}

/// A statement's parameters: an array of one type, or a [`params!`] list.
pub(super) trait Params {
    fn values(&self) -> Result<Vec<Value>>;
}

impl Params for [&dyn ToValue; 0] {
    fn values(&self) -> Result<Vec<Value>> {
        Ok(Vec::new())
    }
}

impl Params for &[&dyn ToValue] {
    fn values(&self) -> Result<Vec<Value>> {
        self.iter().map(|v| v.to_value()).collect()
    }
}

macro_rules! array_params {
    ($($n:literal),*) => {$(
        impl<T: ToValue> Params for [T; $n] {
            fn values(&self) -> Result<Vec<Value>> {
                self.iter().map(ToValue::to_value).collect()
            }
        }
    )*};
}
array_params!(1, 2, 3);

/// Parameters of mixed types, as rusqlite's `params!`.
macro_rules! params {
    ($($value:expr),* $(,)?) => {
        &[$(&$value as &dyn $crate::storage::postgres::statements::ToValue),*][..]
    };
}
pub(super) use params;

/// Statements prepared on one connection, by SQL text; they outlive its transactions.
pub(super) type StatementCache = HashMap<String, Statement>;

/// One open transaction. Reads and writes share the type: PostgreSQL checks a read-only
/// transaction itself (`READ ONLY`), so a write there fails instead of being kept.
pub(super) struct Connection<'c> {
    session: RefCell<Session<'c>>,
    statements: RefCell<&'c mut StatementCache>,
}

/// Where a [`Connection`]'s statements run.
enum Session<'c> {
    /// An open transaction: every write, and every read of more than one statement.
    Transaction(PgTransaction<'c>),
    /// No transaction, for a read of one statement, which PostgreSQL runs in a snapshot of
    /// its own: it needs nothing more, and saves the `START` and `COMMIT` round trips. A
    /// second statement is refused, since it would read another snapshot than the first.
    /// Unlike a read transaction it is not `READ ONLY`: what keeps it a read is that only
    /// [`crate::storage::backend::ReadRows`], which has no write, reaches it.
    Single { client: &'c mut Client, made: Made },
    /// No connection at all, for the rest of a read whose one statement ran before, for a
    /// group ([`crate::storage::backend::Backend::read_without_statements`]): every statement
    /// is refused, and remembered as refused.
    Spent { refused: bool },
}

/// What a [`Session::Single`] has run so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Made {
    Nothing,
    OneStatement,
    /// A second statement was asked for and refused: the read needs a transaction.
    Refused,
}

impl Session<'_> {
    fn prepare(&mut self, sql: &str) -> Result<Statement> {
        Ok(match self {
            Session::Transaction(tx) => tx.prepare(sql)?,
            Session::Single { client, .. } => client.prepare(sql)?,
            Session::Spent { .. } => return Err(Error::SecondStatement),
        })
    }

    fn query(&mut self, statement: &Statement, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<postgres::Row>> {
        Ok(match self {
            Session::Transaction(tx) => tx.query(statement, params)?,
            Session::Single { client, .. } => client.query(statement, params)?,
            Session::Spent { .. } => return Err(Error::SecondStatement),
        })
    }

    fn execute(&mut self, statement: &Statement, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        Ok(match self {
            Session::Transaction(tx) => tx.execute(statement, params)?,
            Session::Single { client, .. } => client.execute(statement, params)?,
            Session::Spent { .. } => return Err(Error::SecondStatement),
        })
    }

    /// Takes the one statement of a [`Session::Single`], and refuses a second before it is
    /// even prepared, so that nothing of it reaches the server. Every statement is taken
    /// here ([`Connection::statement`]) before it runs.
    fn take_the_one(&mut self) -> Result<()> {
        match self {
            Session::Transaction(_) => Ok(()),
            Session::Single { made: made @ Made::Nothing, .. } => {
                *made = Made::OneStatement;
                Ok(())
            }
            Session::Single { made, .. } => {
                *made = Made::Refused;
                Err(Error::SecondStatement)
            }
            Session::Spent { refused } => {
                *refused = true;
                Err(Error::SecondStatement)
            }
        }
    }
}

/// The write functions' name for the same thing.
pub(super) type Transaction<'c> = Connection<'c>;

impl<'c> Connection<'c> {
    pub(super) fn new(tx: PgTransaction<'c>, statements: &'c mut StatementCache) -> Connection<'c> {
        Connection { session: RefCell::new(Session::Transaction(tx)), statements: RefCell::new(statements) }
    }

    /// A connection for a read of one statement, outside any transaction ([`Session::Single`]).
    pub(super) fn single(client: &'c mut Client, statements: &'c mut StatementCache) -> Connection<'c> {
        let session = Session::Single { client, made: Made::Nothing };
        Connection { session: RefCell::new(session), statements: RefCell::new(statements) }
    }

    /// A connection that refuses every statement ([`Session::Spent`]).
    pub(super) fn spent(statements: &'c mut StatementCache) -> Connection<'c> {
        Connection {
            session: RefCell::new(Session::Spent { refused: false }),
            statements: RefCell::new(statements),
        }
    }

    /// Whether this is a read of one statement that asked for a second one, or a spent
    /// connection that asked for any ([`Error::SecondStatement`]): whatever it returned, it
    /// must run again in a transaction.
    pub(super) fn refused_a_second_statement(&self) -> bool {
        matches!(
            &*self.session.borrow(),
            Session::Single { made: Made::Refused, .. } | Session::Spent { refused: true }
        )
    }

    /// Commits the transaction; a single statement or a spent connection has nothing to
    /// commit.
    pub(super) fn commit(self) -> Result<()> {
        match self.session.into_inner() {
            Session::Transaction(tx) => Ok(tx.commit()?),
            Session::Single { .. } | Session::Spent { .. } => Ok(()),
        }
    }

    fn statement(&self, sql: &str) -> Result<Statement> {
        self.session.borrow_mut().take_the_one()?;
        if let Some(statement) = self.statements.borrow().get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.session.borrow_mut().prepare(sql)?;
        self.statements.borrow_mut().insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    fn rows(&self, sql: &str, params: &impl Params) -> Result<Vec<Row>> {
        let statement = self.statement(sql)?;
        let values = params.values()?;
        let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
        Ok(self.session.borrow_mut().query(&statement, &refs)?.into_iter().map(Row).collect())
    }

    /// The first row through `f`; [`Error::QueryReturnedNoRows`] when there is none.
    pub(super) fn query_row<T>(
        &self,
        sql: &str,
        params: impl Params,
        f: impl FnOnce(&Row) -> Result<T>,
    ) -> Result<T> {
        let rows = self.rows(sql, &params)?;
        rows.first().map_or(Err(Error::QueryReturnedNoRows), f)
    }

    /// The number of rows the statement inserted, changed or deleted.
    pub(super) fn execute(&self, sql: &str, params: impl Params) -> Result<usize> {
        let statement = self.statement(sql)?;
        let values = params.values()?;
        let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
        let changed = self.session.borrow_mut().execute(&statement, &refs)?;
        Ok(usize::try_from(changed).unwrap_or(usize::MAX))
    }

    /// Every row through `f`, with parameters given as values: a multi-row statement's
    /// arrays are built once, not copied again.
    pub(super) fn query_values<T>(
        &self,
        sql: &str,
        values: &[Value],
        mut f: impl FnMut(&Row) -> Result<T>,
    ) -> Result<Vec<T>> {
        let statement = self.statement(sql)?;
        let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
        let rows = self.session.borrow_mut().query(&statement, &refs)?;
        rows.into_iter().map(|row| f(&Row(row))).collect()
    }

    pub(super) fn prepare<'s>(&'s self, sql: &str) -> Result<Stmt<'s, 'c>> {
        Ok(Stmt { conn: self, sql: sql.to_owned() })
    }

    /// Every statement is cached on its connection; the two names are rusqlite's.
    pub(super) fn prepare_cached<'s>(&'s self, sql: &str) -> Result<Stmt<'s, 'c>> {
        self.prepare(sql)
    }
}

/// A statement's text on its transaction.
pub(super) struct Stmt<'s, 'c> {
    conn: &'s Connection<'c>,
    sql: String,
}

impl Stmt<'_, '_> {
    pub(super) fn query_row<T>(
        &mut self,
        params: impl Params,
        f: impl FnOnce(&Row) -> Result<T>,
    ) -> Result<T> {
        self.conn.query_row(&self.sql, params, f)
    }

    pub(super) fn execute(&mut self, params: impl Params) -> Result<usize> {
        self.conn.execute(&self.sql, params)
    }

    /// Every row through `f`, in order.
    pub(super) fn query_map<T>(
        &mut self,
        params: impl Params,
        mut f: impl FnMut(&Row) -> Result<T>,
    ) -> Result<std::vec::IntoIter<Result<T>>> {
        let rows = self.conn.rows(&self.sql, &params)?;
        Ok(rows.iter().map(&mut f).collect::<Vec<_>>().into_iter())
    }
}

/// rusqlite's `optional()`: no row is `None`.
pub(super) trait OptionalExtension<T> {
    fn optional(self) -> Result<Option<T>>;
}

impl<T> OptionalExtension<T> for Result<T> {
    fn optional(self) -> Result<Option<T>> {
        match self {
            Ok(value) => Ok(Some(value)),
            Err(Error::QueryReturnedNoRows) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
