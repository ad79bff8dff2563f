//! A builder of ONNX graphs: named values with their shapes, constant
//! initializers and nodes in topological order (the order they are added).
//! It knows ONNX, not Twinhead's network (that is [`super::net`]).

use super::proto::{
    AttributeProto, AttributeType, DataType, Dimension, DimensionValue, GraphProto, NodeProto, TensorProto, TensorShapeProto,
    TensorTypeProto, TypeProto, ValueInfoProto,
};

/// The batch dimension of the graph's inputs and outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batch {
    Fixed(usize),
    /// Chosen at run time: the dimension is named [`BATCH_DIM`].
    Dynamic,
}

/// The name of a dynamic batch dimension.
pub const BATCH_DIM: &str = "batch";

impl Batch {
    /// The size shapes are computed with (the dimension itself is written as [`BATCH_DIM`] when dynamic).
    fn size(self) -> usize {
        match self {
            Self::Fixed(n) => n,
            Self::Dynamic => 1,
        }
    }
}

/// A value of the graph: its name and its shape, the batch dimension first.
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    pub name: String,
    pub dims: Vec<usize>,
}

/// A graph being built.
pub struct Graph {
    batch: Batch,
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    used: std::collections::HashSet<String>,
}

/// An attribute of a node.
pub enum Attr {
    Int(i64),
    Ints(Vec<i64>),
    Float(f32),
    Str(&'static str),
}

impl Graph {
    pub fn new(batch: Batch) -> Self {
        Self { batch, nodes: Vec::new(), initializers: Vec::new(), used: Default::default() }
    }

    pub fn batch(&self) -> usize {
        self.batch.size()
    }

    /// `name`, or `name_2`, `name_3`… when taken: every value and node name is unique.
    fn unique(&mut self, name: &str) -> String {
        let mut candidate = name.to_string();
        let mut n = 1;
        while !self.used.insert(candidate.clone()) {
            n += 1;
            candidate = format!("{name}_{n}");
        }
        candidate
    }

    /// A float constant.
    pub fn constant_f32(&mut self, name: &str, dims: &[usize], values: &[f32]) -> Value {
        assert_eq!(dims.iter().product::<usize>(), values.len(), "{name}: {dims:?} holds {} values", values.len());
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.constant(name, dims, DataType::Float, bytes)
    }

    /// An int8 constant (quantized weights).
    pub fn constant_i8(&mut self, name: &str, dims: &[usize], values: &[i8]) -> Value {
        assert_eq!(dims.iter().product::<usize>(), values.len(), "{name}: {dims:?} holds {} values", values.len());
        let bytes = values.iter().map(|&v| v as u8).collect();
        self.constant(name, dims, DataType::Int8, bytes)
    }

    /// An int64 constant (shapes, axes).
    pub fn constant_i64(&mut self, name: &str, values: &[i64]) -> Value {
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.constant(name, &[values.len()], DataType::Int64, bytes)
    }

    fn constant(&mut self, name: &str, dims: &[usize], data_type: DataType, raw: Vec<u8>) -> Value {
        let name = self.unique(name);
        self.initializers.push(TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: Some(data_type as i32),
            name: Some(name.clone()),
            raw_data: Some(raw),
        });
        Value { name, dims: dims.to_vec() }
    }

    /// Adds a node of `op` with one output of shape `dims`, named after `name`.
    pub fn node(&mut self, op: &str, name: &str, inputs: &[&str], attrs: Vec<(&str, Attr)>, dims: Vec<usize>) -> Value {
        let mut outputs = self.node_outputs(op, name, inputs, attrs, vec![dims]);
        outputs.pop().expect("one output")
    }

    /// Adds a node of `op` with one output per entry of `dims`.
    pub fn node_outputs(&mut self, op: &str, name: &str, inputs: &[&str], attrs: Vec<(&str, Attr)>, dims: Vec<Vec<usize>>) -> Vec<Value> {
        let node_name = self.unique(name);
        let outputs: Vec<Value> = if dims.len() == 1 {
            vec![Value { name: node_name.clone(), dims: dims.into_iter().next().expect("one") }]
        } else {
            dims.into_iter().enumerate().map(|(i, dims)| Value { name: self.unique(&format!("{node_name}:{i}")), dims }).collect()
        };
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|v| v.name.clone()).collect(),
            name: Some(node_name),
            op_type: Some(op.to_string()),
            attribute: attrs.into_iter().map(|(name, value)| attribute(name, value)).collect(),
        });
        outputs
    }

    /// `value` under the name `name` (an output of the graph): the node writing
    /// it writes `name`. Only for a value no node reads yet.
    pub fn rename(&mut self, value: Value, name: &str) -> Value {
        assert!(self.used.insert(name.to_string()), "{name} is taken");
        assert!(!self.nodes.iter().any(|n| n.input.contains(&value.name)), "{} is read already", value.name);
        let node = self.nodes.iter_mut().find(|n| n.output.contains(&value.name)).expect("a node writes the value");
        for output in node.output.iter_mut().filter(|o| **o == value.name) {
            *output = name.to_string();
        }
        Value { name: name.to_string(), dims: value.dims }
    }

    /// A value's declaration as a graph input or output, of element type `data_type`.
    pub fn value_info(&self, value: &Value, data_type: DataType, doc: &str) -> ValueInfoProto {
        let dim = value
            .dims
            .iter()
            .enumerate()
            .map(|(i, &d)| Dimension {
                value: Some(match (i, self.batch) {
                    (0, Batch::Dynamic) => DimensionValue::DimParam(BATCH_DIM.into()),
                    _ => DimensionValue::DimValue(d as i64),
                }),
            })
            .collect();
        ValueInfoProto {
            name: Some(value.name.clone()),
            r#type: Some(TypeProto {
                tensor_type: Some(TensorTypeProto { elem_type: Some(data_type as i32), shape: Some(TensorShapeProto { dim }) }),
            }),
            doc_string: Some(doc.to_string()),
        }
    }

    /// The finished graph.
    pub fn finish(self, name: &str, inputs: Vec<ValueInfoProto>, outputs: Vec<ValueInfoProto>) -> GraphProto {
        GraphProto {
            node: self.nodes,
            name: Some(name.to_string()),
            initializer: self.initializers,
            doc_string: None,
            input: inputs,
            output: outputs,
        }
    }
}

fn attribute(name: &str, value: Attr) -> AttributeProto {
    let mut attr = AttributeProto { name: Some(name.to_string()), ..Default::default() };
    let kind = match value {
        Attr::Int(i) => {
            attr.i = Some(i);
            AttributeType::Int
        }
        Attr::Ints(ints) => {
            attr.ints = ints;
            AttributeType::Ints
        }
        Attr::Float(f) => {
            attr.f = Some(f);
            AttributeType::Float
        }
        Attr::Str(s) => {
            attr.s = Some(s.as_bytes().to_vec());
            AttributeType::String
        }
    };
    attr.r#type = Some(kind as i32);
    attr
}

/// A convolution's or pooling's output side:
/// `floor((side + padding − dilation·(kernel − 1) − 1) / stride) + 1`, `padding` both ends together.
pub fn output_side(side: usize, kernel: usize, stride: usize, padding: usize, dilation: usize) -> usize {
    (side + padding - dilation * (kernel - 1) - 1) / stride + 1
}
