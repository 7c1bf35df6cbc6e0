//! Renderings of the catalog: tables, Markdown, and flow graphs.

/// The flow graph formats `coordinator graph` can write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphFormat {
    /// Mermaid `flowchart`, which GitHub renders in Markdown.
    Mermaid,
    /// Graphviz dot.
    Dot,
}
