package encode

import (
	"strconv"
	"strings"

	"google.golang.org/protobuf/types/descriptorpb"
)

// protoText prints the .proto source of a file NewProtobuf derived:
// proto3 messages with scalar, optional, repeated, map and message fields.
// Fields come first, then the nested messages (map entries are implied by
// their map fields). A nested message is named by its last name, as it is
// declared in the message whose field uses it (the innermost scope, where
// protoc looks first); well-known types are fully qualified with a
// leading dot so that no name in the file can shadow them.
func protoText(f *descriptorpb.FileDescriptorProto, comments map[*descriptorpb.FieldDescriptorProto]string) string {
	var b strings.Builder
	b.WriteString("syntax = \"proto3\";\n\npackage ")
	b.WriteString(f.GetPackage())
	b.WriteString(";\n")
	if len(f.Dependency) > 0 {
		b.WriteByte('\n')
		for _, d := range f.Dependency {
			b.WriteString("import ")
			b.WriteString(strconv.Quote(d))
			b.WriteString(";\n")
		}
	}
	for _, m := range f.MessageType {
		b.WriteByte('\n')
		printMessage(&b, m, "", comments)
	}
	return b.String()
}

func printMessage(b *strings.Builder, m *descriptorpb.DescriptorProto, indent string, comments map[*descriptorpb.FieldDescriptorProto]string) {
	b.WriteString(indent)
	b.WriteString("message ")
	b.WriteString(m.GetName())
	b.WriteString(" {\n")
	in := indent + "  "
	entries := map[string]*descriptorpb.DescriptorProto{}
	for _, n := range m.NestedType {
		if n.GetOptions().GetMapEntry() {
			entries[n.GetName()] = n
		}
	}
	for _, fd := range m.Field {
		b.WriteString(in)
		switch entry := entries[lastName(fd.GetTypeName())]; {
		case entry != nil && fd.GetLabel() == descriptorpb.FieldDescriptorProto_LABEL_REPEATED:
			b.WriteString("map<")
			b.WriteString(protoTypeName(entry.Field[0]))
			b.WriteString(", ")
			b.WriteString(protoTypeName(entry.Field[1]))
			b.WriteString("> ")
		case fd.GetLabel() == descriptorpb.FieldDescriptorProto_LABEL_REPEATED:
			b.WriteString("repeated ")
			b.WriteString(protoTypeName(fd))
			b.WriteByte(' ')
		case fd.GetProto3Optional():
			b.WriteString("optional ")
			fallthrough
		default:
			b.WriteString(protoTypeName(fd))
			b.WriteByte(' ')
		}
		b.WriteString(fd.GetName())
		b.WriteString(" = ")
		b.WriteString(strconv.Itoa(int(fd.GetNumber())))
		b.WriteByte(';')
		if c := comments[fd]; c != "" {
			b.WriteString(" // ")
			b.WriteString(c)
		}
		b.WriteByte('\n')
	}
	for _, n := range m.NestedType {
		if !n.GetOptions().GetMapEntry() {
			b.WriteByte('\n')
			printMessage(b, n, in, comments)
		}
	}
	b.WriteString(indent)
	b.WriteString("}\n")
}

// protoTypeName is how the .proto names a field's type.
func protoTypeName(fd *descriptorpb.FieldDescriptorProto) string {
	switch fd.GetType() {
	case descriptorpb.FieldDescriptorProto_TYPE_MESSAGE, descriptorpb.FieldDescriptorProto_TYPE_ENUM:
		if name := fd.GetTypeName(); strings.HasPrefix(name, ".google.protobuf.") {
			return name
		}
		return lastName(fd.GetTypeName())
	}
	// TYPE_INT32 → "int32", …
	return strings.ToLower(strings.TrimPrefix(fd.GetType().String(), "TYPE_"))
}

func lastName(full string) string {
	return full[strings.LastIndexByte(full, '.')+1:]
}
