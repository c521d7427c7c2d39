//! The stack machine: the supported opcodes, interpreted over values that live in one arena.

use std::borrow::Cow;
use std::collections::HashMap;

use super::numpy::{Array, DtypeSpec, Global};
use super::{MAX_MEMO, MAX_STACK, fail};
use crate::error::{Error, Result};

/// A value: a scalar held in place, or an object of the arena.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// An allowed global, as a value (`_reconstruct` handed to jax's `_reconstruct_array`).
    Global(Global),
    /// The index of an object in [`Machine::objects`].
    Object(usize),
}

/// A value with the byte offset of the opcode that made it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Item {
    pub value: Value,
    pub at: u64,
}

/// What a [`Value::Object`] refers to. Objects are shared by reference, as in Python: the memo,
/// the stack and containers hold indices, so `BUILD` and `SETITEMS` change the one object
/// everything refers to, and a cycle is only a loop of indices.
#[derive(Debug)]
pub(super) enum Object<'a> {
    Str(&'a str),
    Bytes(Cow<'a, [u8]>),
    Tuple(Vec<Item>),
    List(Vec<Item>),
    /// A `dict` or an `OrderedDict`, in the order its items were set.
    Dict(Vec<(Item, Item)>),
    /// What `_reconstruct(ndarray, ..)` makes: an array waiting for its `BUILD` state.
    BlankArray,
    Dtype(DtypeSpec),
    Array(Array),
}

impl Object<'_> {
    /// What the object is, for messages: `a dict`.
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Object::Str(_) => "a str",
            Object::Bytes(_) => "a bytes",
            Object::Tuple(_) => "a tuple",
            Object::List(_) => "a list",
            Object::Dict(_) => "a dict",
            Object::BlankArray => "an ndarray whose state was never set",
            Object::Dtype(_) => "a numpy dtype",
            Object::Array(_) => "an ndarray",
        }
    }
}

/// The interpreter's state: the input, the stack with its marks, the memo and the arena.
pub(super) struct Machine<'a> {
    input: &'a [u8],
    pos: usize,
    /// The name of the opcode being interpreted, for messages.
    op: &'static str,
    /// Where the opcode being interpreted starts.
    at: u64,
    stack: Vec<Item>,
    /// The stack's length at each `MARK`, innermost last.
    marks: Vec<usize>,
    memo: HashMap<u32, Item>,
    pub(super) objects: Vec<Object<'a>>,
    /// How many more bytes `_codecs.encode` may make: as many as the pickle has, so that one
    /// string encoded again and again cannot fill memory.
    pub(super) encode_left: usize,
}

impl<'a> Machine<'a> {
    pub(super) fn new(input: &'a [u8]) -> Self {
        Machine {
            input,
            pos: 0,
            op: "",
            at: 0,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            objects: Vec::new(),
            encode_left: input.len(),
        }
    }

    /// The size of the input.
    pub(super) fn input_len(&self) -> usize {
        self.input.len()
    }

    /// An error at the opcode being interpreted.
    pub(super) fn fail(&self, reason: impl Into<String>) -> Error {
        fail(self.at, reason)
    }

    /// Interprets opcodes up to `STOP`, returning the value it pops.
    pub(super) fn run(&mut self) -> Result<Item> {
        loop {
            self.at = self.pos as u64;
            let Some(&code) = self.input.get(self.pos) else {
                return Err(self.fail("the pickle ends without a STOP opcode"));
            };
            self.pos += 1;
            self.op = opcode_name(code);
            if code == b'.' {
                return self.pop();
            }
            self.step(code)?;
        }
    }

    /// Interprets one opcode other than `STOP`.
    fn step(&mut self, code: u8) -> Result<()> {
        match code {
            // PROTO
            0x80 => {
                let version = self.u8()?;
                if !(2..=5).contains(&version) {
                    return Err(self.fail(format!(
                        "pickle protocol {version} is not supported (2 to 5 are)"
                    )));
                }
            }
            // FRAME: a length to check; the frame's opcodes follow as usual.
            0x95 => {
                let len = self.u64()?;
                self.check_len(len)?;
            }
            b'(' => {
                if self.marks.len() >= MAX_STACK {
                    return Err(self.fail(format!("more than {MAX_STACK} marks are open")));
                }
                self.marks.push(self.stack.len());
            }
            // POP: the top item, or the innermost mark when there is none above it.
            b'0' => {
                if self.stack.len() > self.base() {
                    self.stack.pop();
                } else {
                    self.pop_mark()?;
                }
            }
            // POP_MARK
            b'1' => {
                self.pop_mark()?;
            }
            // DUP
            b'2' => {
                let top = self.top()?;
                self.push_item(top)?;
            }
            b'N' => self.push(Value::None)?,
            // NEWTRUE, NEWFALSE
            0x88 => self.push(Value::Bool(true))?,
            0x89 => self.push(Value::Bool(false))?,
            // BININT, BININT1, BININT2
            b'J' => {
                let [a, b, c, d] = self.array()?;
                self.push(Value::Int(i32::from_le_bytes([a, b, c, d]).into()))?;
            }
            b'K' => {
                let n = self.u8()?;
                self.push(Value::Int(n.into()))?;
            }
            b'M' => {
                let n = u16::from_le_bytes(self.array()?);
                self.push(Value::Int(n.into()))?;
            }
            // LONG1, LONG4
            0x8a => {
                let len = self.u8()?;
                self.long(len.into())?;
            }
            0x8b => {
                let len = self.u32()?;
                self.long(len.into())?;
            }
            // BINFLOAT: big-endian, unlike everything else.
            b'G' => {
                let x = f64::from_be_bytes(self.array()?);
                self.push(Value::Float(x))?;
            }
            // SHORT_BINUNICODE, BINUNICODE, BINUNICODE8
            0x8c => {
                let len = self.u8()?;
                self.string(len.into())?;
            }
            b'X' => {
                let len = self.u32()?;
                self.string(len.into())?;
            }
            0x8d => {
                let len = self.u64()?;
                self.string(len)?;
            }
            // SHORT_BINBYTES, BINBYTES, BINBYTES8, BYTEARRAY8
            b'C' => {
                let len = self.u8()?;
                self.bytes(len.into())?;
            }
            b'B' => {
                let len = self.u32()?;
                self.bytes(len.into())?;
            }
            0x8e | 0x96 => {
                let len = self.u64()?;
                self.bytes(len)?;
            }
            // READONLY_BUFFER: bytes are read-only already.
            0x98 => {
                let top = self.top()?;
                if !matches!(self.object(top.value), Some(Object::Bytes(_))) {
                    return Err(self.fail(format!("READONLY_BUFFER of {}", self.kind(top.value))));
                }
            }
            b')' => self.alloc(Object::Tuple(Vec::new()))?,
            b't' => {
                let items = self.pop_mark()?;
                self.alloc(Object::Tuple(items))?;
            }
            // TUPLE1, TUPLE2, TUPLE3
            0x85..=0x87 => {
                let n = usize::from(code - 0x84);
                let items = self.pop_n(n)?;
                self.alloc(Object::Tuple(items))?;
            }
            b']' => self.alloc(Object::List(Vec::new()))?,
            b'l' => {
                let items = self.pop_mark()?;
                self.alloc(Object::List(items))?;
            }
            b'a' => {
                let item = self.pop()?;
                self.list_mut()?.push(item);
            }
            b'e' => {
                let items = self.pop_mark()?;
                self.list_mut()?.extend(items);
            }
            b'}' => self.alloc(Object::Dict(Vec::new()))?,
            b'd' => {
                let items = self.pop_mark()?;
                let pairs = self.pairs(items)?;
                self.alloc(Object::Dict(pairs))?;
            }
            b's' => {
                let items = self.pop_n(2)?;
                let pairs = self.pairs(items)?;
                self.dict_mut()?.extend(pairs);
            }
            b'u' => {
                let items = self.pop_mark()?;
                let pairs = self.pairs(items)?;
                self.dict_mut()?.extend(pairs);
            }
            // BINPUT, LONG_BINPUT, MEMOIZE
            b'q' => {
                let index = self.u8()?;
                self.put(index.into())?;
            }
            b'r' => {
                let index = self.u32()?;
                self.put(index)?;
            }
            0x94 => {
                let index = u32::try_from(self.memo.len()).unwrap_or(u32::MAX);
                self.put(index)?;
            }
            // BINGET, LONG_BINGET
            b'h' => {
                let index = self.u8()?;
                self.get(index.into())?;
            }
            b'j' => {
                let index = self.u32()?;
                self.get(index)?;
            }
            b'c' => {
                let module = self.line()?;
                let name = self.line()?;
                self.global(module, name)?;
            }
            // STACK_GLOBAL
            0x93 => {
                let [module, name] = self.pop_strs()?;
                self.global(module, name)?;
            }
            b'R' => {
                let args = self.pop()?;
                let callable = self.pop()?;
                let result = self.reduce(callable, args)?;
                self.push_item(Item {
                    value: result,
                    at: self.at,
                })?;
            }
            b'b' => {
                let state = self.pop()?;
                let target = self.top()?;
                self.build(target, state)?;
            }
            b'P' | b'Q' => {
                return Err(self.fail(format!(
                    "opcode {} is refused: persistent ids load objects from outside the pickle",
                    self.op
                )));
            }
            // NEXT_BUFFER
            0x97 => {
                return Err(self.fail(
                    "opcode NEXT_BUFFER is refused: it takes an out-of-band buffer, and none are supplied",
                ));
            }
            _ if self.op == "unknown" => {
                return Err(self.fail(format!("byte {code:#04x} is not a pickle opcode")));
            }
            _ => {
                return Err(self.fail(format!("opcode {} is not supported", self.op)));
            }
        }
        Ok(())
    }

    /// The next `len` bytes of the input, after checking that there are that many.
    fn take(&mut self, len: u64) -> Result<&'a [u8]> {
        self.check_len(len)?;
        let rest = self.input.get(self.pos..).unwrap_or_default();
        let n = usize::try_from(len).unwrap_or(usize::MAX);
        let bytes = rest
            .get(..n)
            .ok_or_else(|| self.fail("the pickle ends inside an opcode"))?;
        self.pos += n;
        Ok(bytes)
    }

    /// Checks that `len` bytes are left, before anything of that size is read or allocated.
    fn check_len(&self, len: u64) -> Result<()> {
        let left = self.input.len().saturating_sub(self.pos);
        if len > left as u64 {
            return Err(self.fail(format!(
                "{} declares {len} bytes, but only {left} are left",
                self.op
            )));
        }
        Ok(())
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let bytes = self.take(N as u64)?;
        bytes
            .try_into()
            .map_err(|_| self.fail("the pickle ends inside an opcode"))
    }

    fn u8(&mut self) -> Result<u8> {
        let [b] = self.array()?;
        Ok(b)
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// A newline-terminated argument of `GLOBAL`.
    fn line(&mut self) -> Result<&'a str> {
        let rest = self.input.get(self.pos..).unwrap_or_default();
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            return Err(self.fail("GLOBAL's names do not end with a newline"));
        };
        let line = rest.get(..end).unwrap_or_default();
        self.pos += end + 1;
        std::str::from_utf8(line).map_err(|_| self.fail("GLOBAL's names are not UTF-8"))
    }

    /// An integer of `LONG1` or `LONG4`: `len` bytes, little-endian two's complement.
    fn long(&mut self, len: u64) -> Result<()> {
        let bytes = self.take(len)?;
        if bytes.len() > 8 {
            return Err(self.fail(format!(
                "an integer of {} bytes is too large (at most 8 are supported)",
                bytes.len()
            )));
        }
        let fill = if bytes.last().is_some_and(|&b| b & 0x80 != 0) {
            0xff
        } else {
            0
        };
        let mut raw = [fill; 8];
        for (slot, &b) in raw.iter_mut().zip(bytes) {
            *slot = b;
        }
        self.push(Value::Int(i64::from_le_bytes(raw)))
    }

    fn string(&mut self, len: u64) -> Result<()> {
        let bytes = self.take(len)?;
        let text = std::str::from_utf8(bytes)
            .map_err(|e| self.fail(format!("a string is not valid UTF-8: {e}")))?;
        self.alloc(Object::Str(text))
    }

    fn bytes(&mut self, len: u64) -> Result<()> {
        let bytes = self.take(len)?;
        self.alloc(Object::Bytes(Cow::Borrowed(bytes)))
    }

    /// The stack's length at the innermost mark: items below it are out of reach.
    fn base(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn underflow(&self) -> Error {
        self.fail(format!(
            "{} needs more values than the stack holds above its mark",
            self.op
        ))
    }

    pub(super) fn push_item(&mut self, item: Item) -> Result<()> {
        if self.stack.len() >= MAX_STACK {
            return Err(self.fail(format!("the stack holds more than {MAX_STACK} values")));
        }
        self.stack.push(item);
        Ok(())
    }

    fn push(&mut self, value: Value) -> Result<()> {
        self.push_item(Item { value, at: self.at })
    }

    /// Adds an object to the arena and pushes it.
    pub(super) fn alloc(&mut self, object: Object<'a>) -> Result<()> {
        let value = self.new_object(object);
        self.push(value)
    }

    /// Adds an object to the arena. There is at most one per opcode, so at most one per byte
    /// of the input.
    pub(super) fn new_object(&mut self, object: Object<'a>) -> Value {
        self.objects.push(object);
        Value::Object(self.objects.len() - 1)
    }

    fn pop(&mut self) -> Result<Item> {
        if self.stack.len() <= self.base() {
            return Err(self.underflow());
        }
        self.stack.pop().ok_or_else(|| self.underflow())
    }

    fn top(&self) -> Result<Item> {
        if self.stack.len() <= self.base() {
            return Err(self.underflow());
        }
        self.stack.last().copied().ok_or_else(|| self.underflow())
    }

    /// The `n` topmost items, in stack order.
    fn pop_n(&mut self, n: usize) -> Result<Vec<Item>> {
        let from = self
            .stack
            .len()
            .checked_sub(n)
            .filter(|&from| from >= self.base())
            .ok_or_else(|| self.underflow())?;
        Ok(self.stack.split_off(from))
    }

    /// The items above the innermost mark, removing the mark.
    fn pop_mark(&mut self) -> Result<Vec<Item>> {
        let Some(mark) = self.marks.pop() else {
            return Err(self.fail(format!("{} without a MARK", self.op)));
        };
        Ok(self.stack.split_off(mark.min(self.stack.len())))
    }

    /// Items taken two at a time as keys and values.
    fn pairs(&self, items: Vec<Item>) -> Result<Vec<(Item, Item)>> {
        if !items.len().is_multiple_of(2) {
            return Err(self.fail(format!(
                "{} has an odd number of items ({}): keys and values come in pairs",
                self.op,
                items.len()
            )));
        }
        let mut pairs = Vec::with_capacity(items.len() / 2);
        let mut items = items.into_iter();
        while let (Some(key), Some(value)) = (items.next(), items.next()) {
            pairs.push((key, value));
        }
        Ok(pairs)
    }

    /// The two strings `STACK_GLOBAL` takes, module then name.
    fn pop_strs(&mut self) -> Result<[&'a str; 2]> {
        let name = self.pop()?;
        let module = self.pop()?;
        match (self.object(module.value), self.object(name.value)) {
            (Some(&Object::Str(module)), Some(&Object::Str(name))) => Ok([module, name]),
            _ => Err(self.fail(format!(
                "STACK_GLOBAL needs two strings, found {} and {}",
                self.kind(module.value),
                self.kind(name.value)
            ))),
        }
    }

    pub(super) fn object(&self, value: Value) -> Option<&Object<'a>> {
        match value {
            Value::Object(index) => self.objects.get(index),
            _ => None,
        }
    }

    /// What a value is, for messages: `an int`, `the global numpy.dtype`.
    pub(super) fn kind(&self, value: Value) -> String {
        match value {
            Value::None => "None".to_owned(),
            Value::Bool(b) => format!("a bool ({})", if b { "True" } else { "False" }),
            Value::Int(n) => format!("an int ({n})"),
            Value::Float(x) => format!("a float ({x})"),
            Value::Global(global) => format!("the global `{}`", global.name()),
            Value::Object(_) => self
                .object(value)
                .map_or("a value", Object::kind)
                .to_owned(),
        }
    }

    /// The list `APPEND` and `APPENDS` add to: the top of the stack.
    fn list_mut(&mut self) -> Result<&mut Vec<Item>> {
        let top = self.top()?;
        let found = self.kind(top.value);
        let (op, at) = (self.op, self.at);
        match self.object_mut(top.value) {
            Some(Object::List(items)) => Ok(items),
            _ => Err(fail(at, format!("{op} to {found}, not a list"))),
        }
    }

    /// The dict `SETITEM` and `SETITEMS` set items of: the top of the stack.
    fn dict_mut(&mut self) -> Result<&mut Vec<(Item, Item)>> {
        let top = self.top()?;
        let found = self.kind(top.value);
        let (op, at) = (self.op, self.at);
        match self.object_mut(top.value) {
            Some(Object::Dict(pairs)) => Ok(pairs),
            _ => Err(fail(at, format!("{op} on {found}, not a dict"))),
        }
    }

    pub(super) fn object_mut(&mut self, value: Value) -> Option<&mut Object<'a>> {
        match value {
            Value::Object(index) => self.objects.get_mut(index),
            _ => None,
        }
    }

    fn put(&mut self, index: u32) -> Result<()> {
        let top = self.top()?;
        if self.memo.len() >= MAX_MEMO && !self.memo.contains_key(&index) {
            return Err(self.fail(format!("the memo holds more than {MAX_MEMO} values")));
        }
        self.memo.insert(index, top);
        Ok(())
    }

    fn get(&mut self, index: u32) -> Result<()> {
        let Some(&item) = self.memo.get(&index) else {
            return Err(self.fail(format!(
                "{} of memo entry {index}, which was never stored",
                self.op
            )));
        };
        self.push_item(item)
    }

    fn global(&mut self, module: &str, name: &str) -> Result<()> {
        match Global::resolve(module, name) {
            Some(global) => self.push(Value::Global(global)),
            None => Err(self.fail(format!("global `{module}.{name}` is not allowed"))),
        }
    }
}

/// The name of an opcode, as `pickletools` calls it.
fn opcode_name(code: u8) -> &'static str {
    match code {
        b'(' => "MARK",
        b'.' => "STOP",
        b'0' => "POP",
        b'1' => "POP_MARK",
        b'2' => "DUP",
        b'F' => "FLOAT",
        b'I' => "INT",
        b'J' => "BININT",
        b'K' => "BININT1",
        b'L' => "LONG",
        b'M' => "BININT2",
        b'N' => "NONE",
        b'P' => "PERSID",
        b'Q' => "BINPERSID",
        b'R' => "REDUCE",
        b'S' => "STRING",
        b'T' => "BINSTRING",
        b'U' => "SHORT_BINSTRING",
        b'V' => "UNICODE",
        b'X' => "BINUNICODE",
        b'a' => "APPEND",
        b'b' => "BUILD",
        b'c' => "GLOBAL",
        b'd' => "DICT",
        b'}' => "EMPTY_DICT",
        b'e' => "APPENDS",
        b'g' => "GET",
        b'h' => "BINGET",
        b'i' => "INST",
        b'j' => "LONG_BINGET",
        b'l' => "LIST",
        b']' => "EMPTY_LIST",
        b'o' => "OBJ",
        b'p' => "PUT",
        b'q' => "BINPUT",
        b'r' => "LONG_BINPUT",
        b's' => "SETITEM",
        b't' => "TUPLE",
        b')' => "EMPTY_TUPLE",
        b'u' => "SETITEMS",
        b'G' => "BINFLOAT",
        0x80 => "PROTO",
        0x81 => "NEWOBJ",
        0x82 => "EXT1",
        0x83 => "EXT2",
        0x84 => "EXT4",
        0x85 => "TUPLE1",
        0x86 => "TUPLE2",
        0x87 => "TUPLE3",
        0x88 => "NEWTRUE",
        0x89 => "NEWFALSE",
        0x8a => "LONG1",
        0x8b => "LONG4",
        b'B' => "BINBYTES",
        b'C' => "SHORT_BINBYTES",
        0x8c => "SHORT_BINUNICODE",
        0x8d => "BINUNICODE8",
        0x8e => "BINBYTES8",
        0x8f => "EMPTY_SET",
        0x90 => "ADDITEMS",
        0x91 => "FROZENSET",
        0x92 => "NEWOBJ_EX",
        0x93 => "STACK_GLOBAL",
        0x94 => "MEMOIZE",
        0x95 => "FRAME",
        0x96 => "BYTEARRAY8",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        _ => "unknown",
    }
}
