"""Spark's JDBC writer into flightsink through Arrow's Flight SQL JDBC driver.

flightsink/sql_spark_test.go runs it with a pyspark install and checks Kafka;
it prints KEY=VALUE lines. Usage:

    python spark_write.py <jdbc-url> <driver-jar> <declared-table> <new-table or -> <rows>
"""
import datetime
import decimal
import sys

from pyspark.sql import SparkSession
from pyspark.sql.types import (BooleanType, ByteType, DateType, DecimalType, DoubleType, LongType, StringType,
                               StructField, StructType, TimestampType)

url, jar, declared, new_table, rows = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
utc = "-Duser.timezone=UTC"
spark = (SparkSession.builder.master("local[2]").appName("flightsink-jdbc")
         .config("spark.jars", jar)
         .config("spark.driver.memory", "512m")
         .config("spark.driver.extraJavaOptions", utc)
         .config("spark.executor.extraJavaOptions", utc)
         .config("spark.sql.session.timeZone", "UTC")
         .config("spark.ui.enabled", "false")
         .config("spark.ui.showConsoleProgress", "false")
         .getOrCreate())
spark.sparkContext.setLogLevel("ERROR")
schema = StructType([
    StructField("k", StringType()), StructField("id", LongType(), False), StructField("b", ByteType()),
    StructField("d", DoubleType()), StructField("flag", BooleanType()), StructField("dec", DecimalType(10, 2)),
    StructField("day", DateType()), StructField("ts", TimestampType()),
])
base = datetime.datetime(2026, 1, 2, 3, 4, 5, 678000)
data = [(f"key-{i}", i, i % 100, i / 2, i % 2 == 0, decimal.Decimal(i) / 100, datetime.date(2026, 1, 1 + i % 28),
         base + datetime.timedelta(seconds=i)) for i in range(rows)]
df = spark.createDataFrame(data, schema).repartition(2)
props = {"driver": "org.apache.arrow.driver.jdbc.ArrowFlightJdbcDriver"}


def one_line(e):
    return " ".join(str(e).split())[:600]


df.write.jdbc(url, declared, mode="append", properties=props)
print("APPEND=ok", flush=True)
try:
    df.write.jdbc(url, declared, mode="overwrite", properties=props)
    print("OVERWRITE=accepted", flush=True)
except Exception as e:  # noqa: BLE001 - the message is the result
    print("OVERWRITE=refused " + one_line(e), flush=True)
if new_table != "-":
    try:
        df.write.option("createTableOptions", "WITH (key_field = 'k')").jdbc(url, new_table, mode="append", properties=props)
        print("CREATE=ok", flush=True)
    except Exception as e:  # noqa: BLE001
        print("CREATE=failed " + one_line(e), flush=True)
spark.stop()
