//! What a request requires: [`Access`], decided per request by an [`AccessPolicy`] from a
//! [`RequestHead`]; [`RouteTable`] is the policy that decides by route, as the router routes.

mod access;
mod route_path;
mod route_table;

pub use access::{Access, AccessPolicy, KeyScope, RequestHead};
pub use route_table::{Methods, RouteTable, RouteTableBuilder, RouteTableError};
