pub mod ct2;
