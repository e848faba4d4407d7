pub mod ct2_builder;
