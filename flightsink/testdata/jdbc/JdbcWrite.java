// JdbcWrite drives flightsink through Apache Arrow's Flight SQL JDBC driver
// the way a JDBC tool does; flightsink/sql_jdbc_test.go runs it (java
// single-file source launch) and checks what landed in Kafka. It prints
// KEY=VALUE lines the test reads.
//
//   java --add-opens=java.base/java.nio=ALL-UNNAMED -Duser.timezone=UTC \
//        -cp flight-sql-jdbc-driver.jar JdbcWrite.java <jdbc-url> <table> <rows>
import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Statement;
import java.sql.Timestamp;
import java.sql.Types;
import java.util.ArrayList;
import java.util.List;

public class JdbcWrite {
  public static void main(String[] args) throws Exception {
    String url = args[0], table = args[1];
    int rows = Integer.parseInt(args[2]);
    String q = "\"" + table + "\"";
    Connection conn = DriverManager.getConnection(url);
    try {
      try (Statement st = conn.createStatement()) {
        st.executeUpdate("CREATE TABLE " + q + " (\"k\" VARCHAR(20) , \"id\" INTEGER NOT NULL, \"amount\" DOUBLE PRECISION , \"ts\" TIMESTAMP )");
      }
      DatabaseMetaData md = conn.getMetaData();
      List<String> types = new ArrayList<>();
      try (ResultSet rs = md.getTableTypes()) {
        while (rs.next()) types.add(rs.getString(1));
      }
      System.out.println("TABLE_TYPES=" + String.join(",", types));
      List<String> cols = new ArrayList<>();
      try (ResultSet rs = md.getColumns(null, null, table, null)) {
        while (rs.next()) cols.add(rs.getString("COLUMN_NAME") + ":" + rs.getInt("DATA_TYPE"));
      }
      System.out.println("COLUMNS=" + String.join(",", cols));

      long written = 0;
      try (PreparedStatement ps = conn.prepareStatement("INSERT INTO " + q + " VALUES (?, ?, ?, ?)")) {
        for (int i = 0; i < rows; i++) {
          ps.setString(1, "key-" + i);
          ps.setInt(2, i);
          ps.setDouble(3, i * 0.5);
          ps.setTimestamp(4, Timestamp.valueOf("2026-01-02 03:04:05.678"));
          ps.addBatch();
        }
        for (int n : ps.executeBatch()) written += n;
      }
      System.out.println("BATCH_COUNT=" + written);

      // A batch that fails mid-way (a NULL in a NOT NULL column) leaves nothing.
      try (PreparedStatement ps = conn.prepareStatement("INSERT INTO " + q + " (\"k\", \"id\") VALUES (?, ?)")) {
        for (int i = 0; i < 100; i++) {
          ps.setString(1, "bad-" + i);
          if (i == 50) ps.setNull(2, Types.INTEGER); else ps.setInt(2, i);
          ps.addBatch();
        }
        ps.executeBatch();
        System.out.println("BAD_BATCH=accepted");
      } catch (SQLException e) {
        System.out.println("BAD_BATCH=refused " + oneLine(e));
      }

      try (Statement st = conn.createStatement(); ResultSet rs = st.executeQuery("SELECT * FROM " + q + " WHERE 1=0")) {
        ResultSetMetaData rm = rs.getMetaData();
        List<String> probe = new ArrayList<>();
        for (int i = 1; i <= rm.getColumnCount(); i++) probe.add(rm.getColumnName(i) + ":" + rm.getColumnType(i));
        System.out.println("PROBE=" + String.join(",", probe) + " rows=" + (rs.next() ? "some" : "none"));
      }

      try (Statement st = conn.createStatement()) {
        st.executeUpdate("DROP TABLE " + q);
        System.out.println("DROP=accepted");
      } catch (SQLException e) {
        System.out.println("DROP=refused " + oneLine(e));
      }
    } finally {
      // With the catalog property, driver 18.3 fails its own close (it ends the
      // session after shutting its channel): reported, not fatal.
      try {
        conn.close();
        System.out.println("CLOSE=ok");
      } catch (SQLException e) {
        System.out.println("CLOSE=failed " + oneLine(e));
      }
    }
  }

  static String oneLine(Throwable e) {
    StringBuilder b = new StringBuilder();
    for (Throwable c = e; c != null; c = c.getCause()) b.append(c.getMessage()).append(" | ");
    return b.toString().replace('\n', ' ');
  }
}
