// AdbcWrite drives flightsink through Java ADBC's Flight SQL driver
// (org.apache.arrow.adbc:adbc-driver-flight-sql, see pom.xml): bulk ingest
// in append mode into a declared table, and in create mode into a new one
// (the driver sends CREATE TABLE, then a prepared INSERT with its own
// parameter types). flightsink/sql_jdbc_test.go runs it and checks Kafka.
//
//   java -cp <classpath> AdbcWrite.java <grpc+tcp://host:port> <declared table> <new table> <rows>
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.arrow.adbc.core.AdbcConnection;
import org.apache.arrow.adbc.core.AdbcDatabase;
import org.apache.arrow.adbc.core.AdbcDriver;
import org.apache.arrow.adbc.core.AdbcStatement;
import org.apache.arrow.adbc.core.BulkIngestMode;
import org.apache.arrow.adbc.driver.flightsql.FlightSqlDriver;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.vector.BigIntVector;
import org.apache.arrow.vector.IntVector;
import org.apache.arrow.vector.VarCharVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.apache.arrow.vector.types.pojo.Field;
import org.apache.arrow.vector.types.pojo.Schema;

public class AdbcWrite {
  public static void main(String[] args) throws Exception {
    String uri = args[0], declared = args[1], created = args[2];
    int rows = Integer.parseInt(args[3]);
    try (BufferAllocator alloc = new RootAllocator()) {
      Map<String, Object> params = new HashMap<>();
      AdbcDriver.PARAM_URI.set(params, uri);
      try (AdbcDatabase db = new FlightSqlDriver(alloc).open(params); AdbcConnection conn = db.connect()) {
        // Append: int64 ids into the table's INTEGER column (the server casts).
        Schema s1 = new Schema(List.of(Field.nullable("k", new ArrowType.Utf8()), Field.nullable("id", new ArrowType.Int(64, true))));
        try (VectorSchemaRoot root = VectorSchemaRoot.create(s1, alloc)) {
          VarCharVector k = (VarCharVector) root.getVector("k");
          BigIntVector id = (BigIntVector) root.getVector("id");
          for (int i = 0; i < rows; i++) {
            k.setSafe(i, ("a-" + i).getBytes(StandardCharsets.UTF_8));
            id.setSafe(i, i);
          }
          root.setRowCount(rows);
          try (AdbcStatement st = conn.bulkIngest(declared, BulkIngestMode.APPEND)) {
            st.bind(root);
            System.out.println("APPEND_COUNT=" + st.executeUpdate().getAffectedRows());
          }
        }
        // Create: int and string columns into a new table.
        Schema s2 = new Schema(List.of(Field.nullable("n", new ArrowType.Int(32, true)), Field.nullable("s", new ArrowType.Utf8())));
        try (VectorSchemaRoot root = VectorSchemaRoot.create(s2, alloc)) {
          IntVector n = (IntVector) root.getVector("n");
          VarCharVector s = (VarCharVector) root.getVector("s");
          for (int i = 0; i < rows; i++) {
            n.setSafe(i, i);
            s.setSafe(i, ("s-" + i).getBytes(StandardCharsets.UTF_8));
          }
          root.setRowCount(rows);
          try (AdbcStatement st = conn.bulkIngest(created, BulkIngestMode.CREATE)) {
            st.bind(root);
            System.out.println("CREATE_COUNT=" + st.executeUpdate().getAffectedRows());
          }
        }
      }
    }
  }
}
