//! JSON as a live oVirt 4.5 engine writes it (see docs/representations.md): integers and booleans
//! as strings, decimals and dates (epoch milliseconds) as numbers, lists wrapped in an object keyed by the item name
//! (`"nics": {"nic": [...]}`), sub-collection links in `"link"`, actions in `"actions": {"link": [...]}`.
//! The reader also takes native numbers and booleans, and bare arrays for lists.

pub(crate) mod reader;
mod writer;

pub use reader::{field, list_items, parse_document, JsonValue};
pub use writer::JsonWriter;
