/*
 * SubmitJob: submits Switchyard jobs from a Java service: a JobRequest
 * (schemas/JobRequest.v1.avsc) as a plain Avro record on <ns>.requests, keyed by its job id,
 * written by the Apache Kafka client with Apicurio Registry's Avro serializer (every jar from
 * Maven Central). docs/integrations.md explains it; tests/integration/itest_client_java.py
 * compiles and runs this file against a real broker, registry and router.
 *
 *   java -cp "libs/*:." SubmitJob JOB_ID...
 *
 * Environment:
 *   BOOTSTRAP_SERVERS  the Kafka brokers (default localhost:9092)
 *   TOPIC              the requests topic, <ns>.requests (default switchyard.requests)
 *   SCHEMA_FILE        the JobRequest schema (default schemas/JobRequest.v1.avsc)
 *   REGISTRY_URL       Apicurio Registry's own API, http://HOST:PORT/apis/registry/v3: the
 *                      registry whose Confluent API (/apis/ccompat/v7) is the router's
 *                      schema.registry.url. Unset or empty: no registry, Avro single-object
 *                      encoding instead.
 *
 * Prints "JOB_ID PARTITION OFFSET" for each job the broker acknowledged. On an error it stops
 * with a stack trace and exit status 1; running it again with the same job ids is safe (the
 * router answers an id it already routed with DUPLICATE and does not run it twice).
 */
import io.apicurio.registry.serde.Default4ByteIdHandler;
import io.apicurio.registry.serde.avro.AvroKafkaSerializer;
import io.apicurio.registry.serde.config.SerdeConfig;
import io.apicurio.registry.serde.kafka.config.KafkaSerdeConfig;
import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.IOException;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.generic.GenericRecordBuilder;
import org.apache.avro.message.BinaryMessageEncoder;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.errors.SerializationException;
import org.apache.kafka.common.serialization.Serializer;
import org.apache.kafka.common.serialization.StringSerializer;

public final class SubmitJob {
    public static void main(String[] args) throws Exception {
        if (args.length == 0) {
            System.err.println("usage: SubmitJob JOB_ID...");
            System.exit(2);
        }
        String topic = env("TOPIC", "switchyard.requests");
        File schemaFile = new File(env("SCHEMA_FILE", "schemas/JobRequest.v1.avsc"));
        Schema schema = new Schema.Parser().parse(schemaFile);
        Properties config =
                producerConfig(env("BOOTSTRAP_SERVERS", "localhost:9092"), env("REGISTRY_URL", ""));
        try (KafkaProducer<String, GenericRecord> producer = new KafkaProducer<>(config)) {
            for (String jobId : args) {
                GenericRecord job = jobRequest(schema, jobId);
                // get(): wait for the acknowledgement. Not acknowledged: send again, same job id.
                RecordMetadata sent = producer.send(new ProducerRecord<>(topic, jobId, job)).get();
                System.out.println(jobId + " " + sent.partition() + " " + sent.offset());
            }
        }
    }

    static Properties producerConfig(String bootstrapServers, String registryUrl) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrapServers);
        // acks=all, and a send the client retries is written once
        p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        // The key is the job id (UTF-8). Kafka's default partitioner hashes keys with murmur2, as
        // Switchyard does: leave partitioner.class alone.
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        if (registryUrl.isEmpty()) {
            p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG,
                    SingleObjectSerializer.class.getName());
            return p;
        }
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, AvroKafkaSerializer.class.getName());
        p.put(SerdeConfig.REGISTRY_URL, registryUrl);
        p.put(SerdeConfig.AUTO_REGISTER_ARTIFACT, "true"); // under the subject <topic>-value
        // One self-contained schema. Without this the serializer registers the nested Criterion
        // record as a schema of its own and JobRequest as a schema referring to it. The router
        // reads that too, but the registry then refuses the self-contained schema that
        // `switchyard submit` registers under the same subject (HTTP 422) when the subject has
        // a compatibility rule, as Confluent's default BACKWARD is.
        p.put(SerdeConfig.DEREFERENCE_SCHEMA, "true");
        // The Confluent framing the router reads: magic byte 0 and the schema's 4-byte content id
        // (the id the registry's Confluent API serves) before the Avro body, no Kafka headers.
        // Apicurio 3.x's defaults, spelled out (2.x defaults differ).
        p.put(SerdeConfig.ID_HANDLER, Default4ByteIdHandler.class.getName());
        p.put(SerdeConfig.USE_ID, "contentId");
        p.put(KafkaSerdeConfig.ENABLE_HEADERS, "false");
        return p;
    }

    /** The JobRequest for jobId; fields not set here take the schema's defaults. */
    static GenericRecord jobRequest(Schema schema, String jobId) {
        Schema criterion = schema.getField("command_criterion").schema();
        return new GenericRecordBuilder(schema)
                .set("job_id", jobId) // the record key too; keep it stable across retries
                .set("name", "nightly aggregate")
                .set("user", "svc-sales")
                .set("grouping", "sales")
                .set("grouping_instance", "2024-05-01")
                .set("cluster_criteria", List.of( // in order: later ones are fallbacks
                        criterion(criterion, "env:prod", "spark:3.5"),
                        criterion(criterion, "env:prod-dr")))
                .set("command_criterion", criterion(criterion, "type:spark-submit"))
                .set("arguments", List.of("s3://bucket/jobs/aggregate.py", "--date", "2024-05-01"))
                .set("metadata", Map.of("origin", "sales-service"))
                .set("timeout_ms", 3L * 3600 * 1000)
                .set("submitted_at", System.currentTimeMillis()) // copied into the router's answer
                .build();
    }

    static GenericRecord criterion(Schema criterion, String... tags) {
        // id and name (match a resource by id or name) stay null
        return new GenericRecordBuilder(criterion).set("tags", List.of(tags)).build();
    }

    /**
     * Avro single-object encoding (0xC3 0x01, the schema's CRC-64-AVRO fingerprint, the Avro
     * body), which the router reads with or without a registry.
     */
    public static final class SingleObjectSerializer implements Serializer<GenericRecord> {
        @Override
        public byte[] serialize(String topic, GenericRecord record) {
            BinaryMessageEncoder<GenericRecord> encoder =
                    new BinaryMessageEncoder<>(GenericData.get(), record.getSchema());
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            try {
                encoder.encode(record, out);
            } catch (IOException e) {
                throw new SerializationException("encoding JobRequest " + record.get("job_id"), e);
            }
            return out.toByteArray();
        }
    }

    static String env(String name, String fallback) {
        String value = System.getenv(name);
        return value != null ? value : fallback;
    }
}
